from pathlib import Path

import pytest

from server.config import SettingsError, load_settings, with_secrets


def test_cli_overrides_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAIRWISE_PORT", "9000")
    assert load_settings().port == 9000
    assert load_settings(port=9100).port == 9100
    assert load_settings(port=None).port == 9000


@pytest.mark.parametrize(
    ("env", "value", "fragment"),
    [
        ("PAIRWISE_PORT", "eighty", "PAIRWISE_PORT"),
        ("PAIRWISE_DATABASE_URL", "mysql://x", "PAIRWISE_DATABASE_URL"),
        ("PAIRWISE_LOG_FORMAT", "xml", "PAIRWISE_LOG_FORMAT"),
    ],
)
def test_invalid_setting_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_generated_secrets_persist(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    first, created = with_secrets(settings)
    assert set(created) == {"admin_key", "secret_key"}
    again, created_again = with_secrets(settings)
    assert created_again == []
    assert first.admin_key == again.admin_key and first.secret_key == again.secret_key
    assert (tmp_path / "admin_key").stat().st_mode & 0o077 == 0
