"""Key presses sent as SIP INFO bodies."""

from __future__ import annotations

import pytest

from server.phone.dtmf import info_digit


@pytest.mark.parametrize(
    ("content_type", "body", "digit"),
    [
        ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", "5"),
        ("application/dtmf-relay", b"Signal= #\r\nDuration= 250\r\n", "#"),
        ("application/dtmf-relay", b"signal=*\nduration=100", "*"),
        ("application/dtmf-relay", b"Signal=11\r\nDuration=160\r\n", "#"),  # Cisco's #
        ("application/dtmf-relay", b"Signal=10\r\n", "*"),
        ("application/dtmf", b"7", "7"),
        ("application/dtmf", b"b\r\n", "B"),
    ],
)
def test_a_key_press(content_type: str, body: bytes, digit: str) -> None:
    assert info_digit(content_type, body) == digit


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/dtmf-relay", b"Duration=160\r\n"),  # no signal
        ("application/dtmf-relay", b"Signal=16\r\n"),  # past D
        ("application/dtmf-relay", b"Signal=55\r\n"),
        ("application/dtmf", b"xyz"),
        ("application/dtmf", b"\xff\xfe"),
        ("application/dtmf", b"E"),
    ],
)
def test_a_body_that_is_no_key_press(content_type: str, body: bytes) -> None:
    assert info_digit(content_type, body) is None
