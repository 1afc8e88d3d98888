import json
import logging

import pytest

from server.logs import JsonFormatter, TextFormatter, configure_logging


def record(message: str, **extra: object) -> logging.LogRecord:
    return logging.makeLogRecord(
        {
            "name": "pairwise.test",
            "levelname": "INFO",
            "levelno": logging.INFO,
            "msg": message,
            **extra,
        }
    )


def test_json_lines_carry_the_event_and_its_fields() -> None:
    line = JsonFormatter().format(record("chat stored", room="pair-1", id=7))
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["event"] == "chat stored" and entry["level"] == "info"
    assert entry["room"] == "pair-1" and entry["id"] == 7 and entry["ts"].endswith("Z")


def test_text_lines_put_fields_after_the_message() -> None:
    line = TextFormatter().format(record("joined", identity="ada"))
    assert "pairwise.test: joined identity=ada" in line


def test_configure_logging_json(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("json", "INFO")
        logging.getLogger("pairwise.x").info("ready", extra={"port": 8080})
        entry = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert entry == {**entry, "event": "ready", "port": 8080, "logger": "pairwise.x"}
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
