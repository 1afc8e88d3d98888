import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from server.__main__ import main
from tests.support.process import ROOT, ServerProcess


def test_server_starts_answers_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    server = ServerProcess(data_dir=tmp_path / "data").start()
    with urllib.request.urlopen(server.url + "/healthz", timeout=5) as resp:
        assert json.loads(resp.read()) == {"status": "ok"}
    assert server.stop(signal.SIGTERM) == 0
    assert "stopped" in server.log()


def test_sigint_also_stops_with_exit_code_zero(tmp_path: Path) -> None:
    server = ServerProcess(data_dir=tmp_path / "data").start()
    assert server.stop(signal.SIGINT) == 0


def test_invalid_setting_stops_start_up_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PAIRWISE_PORT": "not-a-port", "PAIRWISE_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "server", "serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "PAIRWISE_PORT" in result.stderr and "Traceback" not in result.stderr


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "server", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    for command in ("serve", "migrate", "token"):
        assert command in out
        # The same `main` as `python -m server`, without a new interpreter for each.
        with pytest.raises(SystemExit) as exit_:
            main([command, "--help"])
        assert exit_.value.code == 0 and "usage:" in capsys.readouterr().out


def test_token_command_prints_a_verifiable_token(tmp_path: Path) -> None:
    env = {**os.environ, "PAIRWISE_DATA_DIR": str(tmp_path), "PAIRWISE_SECRET_KEY": "s" * 32}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "server",
            "token",
            "--room",
            "r1",
            "--identity",
            "ada",
            "--role",
            "mentee",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    from server.auth import TokenIssuer

    claims = TokenIssuer("s" * 32, 60).verify(json.loads(result.stdout)["token"])
    assert claims.identity == "ada" and claims.room == "r1"
