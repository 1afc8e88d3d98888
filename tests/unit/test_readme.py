"""The README is the operator's first page: it must stay true."""

from pathlib import Path

from server.config import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme() -> None:
    missing = [
        f"PAIRWISE_{name.upper()}"
        for name in Settings.model_fields
        if f"`PAIRWISE_{name.upper()}`" not in README
    ]
    assert missing == []


def test_readme_shows_the_two_commands() -> None:
    assert "make run" in README and "make test" in README
