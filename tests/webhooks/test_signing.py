"""The signature scheme as docs/webhooks.md tells receivers to check it: the documented
function accepts what the server signs, and refuses a changed body, another secret, an old
timestamp and malformed headers."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from server.webhooks.signing import signature_header, verify, webhook_secret

DOC = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
SECRET = webhook_secret("server-key-0123456789", "salt")
BODY = b'{"id":"evt_1","type":"pair.published"}'


def documented_verify() -> Callable[..., bool]:
    section = DOC.split("## Signatures", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "docs/webhooks.md shows a receiver's check in Python"
    namespace: dict[str, object] = {}
    exec(code.group(1), namespace)  # noqa: S102 - our own documentation
    check = namespace["verify"]
    assert callable(check)
    return check  # type: ignore[return-value]


@pytest.mark.parametrize("check", [documented_verify(), None])
def test_a_receiver_accepts_only_a_fresh_signature_of_these_bytes(
    check: Callable[..., bool] | None,
) -> None:
    now = int(time.time())

    def ok(header: str, body: bytes = BODY, secret: str = SECRET) -> bool:
        if check is None:  # the server's own copy
            return verify(secret, header, body, time.time())
        return check(secret, header, body)

    header = signature_header(SECRET, now, BODY)
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert ok(header)
    assert not ok(header, BODY + b" ")
    assert not ok(header, secret=webhook_secret("server-key-0123456789", "other salt"))
    assert not ok(signature_header(SECRET, now - 301, BODY))  # too old to trust
    assert ok(signature_header(SECRET, now - 200, BODY))
    v1 = header.split("v1=")[1]
    for malformed in (
        f"v1={v1}",  # no time
        f"t={now},t={now},v1={v1}",
        f"t={now}",  # no signature
        f"t=-{now},v1={v1}",
        "",
    ):
        assert not ok(malformed), malformed
    # Another scheme's signature beside ours (a future v2) is ignored, not refused.
    assert ok(f"{header},v0=deadbeef")


def test_secrets_differ_by_salt_and_by_server_key() -> None:
    assert SECRET.startswith("whsec_")
    assert webhook_secret("server-key-0123456789", "salt") == SECRET
    assert webhook_secret("another-server-key-01", "salt") != SECRET
