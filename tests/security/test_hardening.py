"""Item 9, the low findings: NUL characters, deeply nested JSON, cached private answers,
world-readable database files, and the admin key in every start-up log."""

from __future__ import annotations

import stat
import urllib.request
from pathlib import Path

from tests.conftest import ADMIN
from tests.security.conftest import Target
from tests.support.participants import SocketParticipant
from tests.support.process import ServerProcess

NUL = "\x00"


def refused(status: int, payload: object) -> bool:
    return status == 422 and isinstance(payload, dict) and bool(payload["error"]["message"])


async def test_nul_in_names_chat_and_titles_is_refused_not_a_500(target: Target) -> None:
    pair = await target.pair("ada", "bo")
    pid, room = pair["id"], pair["room"]
    sid = await target.session(pair)
    ada = target.bearer(target.token(room, "ada", "mentor"))
    token_body = {"room": room, "identity": "eve", "name": f"Eve{NUL}", "role": "mentee"}
    members = [
        {"identity": "cy", "name": f"C{NUL}y", "role": "mentor"},
        {"identity": "di", "name": "Di", "role": "mentee"},
    ]
    base = f"/api/v1/pairs/{pid}"
    attempts = [
        ("POST", "/api/v1/tokens", ADMIN, token_body),
        ("POST", "/api/v1/pairs", ADMIN, {"members": members}),
        (
            "POST",
            "/api/v1/pairs",
            ADMIN,
            {"members": members[1:] + [members[1] | {"identity": "x"}], "title": NUL},
        ),
        ("POST", f"{base}/agenda", ada, {"text": f"before{NUL}after"}),
        ("POST", f"{base}/goals", ada, {"title": f"goal{NUL}"}),
        ("POST", f"{base}/sessions/{sid}/notes", ada, {"text": NUL}),
        ("POST", f"{base}/sessions/{sid}/feedback", ada, {"rating": 3, "comment": f"a{NUL}"}),
        ("GET", f"/api/v1/pairs/{pid}%00", ADMIN, None),
        ("GET", "/api/v1/pairs?status=%00", ADMIN, None),
    ]
    for method, path, headers, body in attempts:
        status, payload, _ = await target.call(method, path, headers, body)
        assert refused(status, payload), (method, path, status, payload)
        assert payload["error"]["code"] == "invalid_payload"
    # A raw NUL byte, not only the JSON escape.
    status, payload, _ = await target.call(
        "POST", f"{base}/agenda", ada, data=b'{"text": "raw\x00byte"}'
    )
    assert refused(status, payload), payload
    # Nothing was stored.
    assert (await target.ok("GET", f"{base}/agenda?all=1", ADMIN))["items"] == []
    assert (await target.ok("GET", f"{base}/goals", ADMIN))["goals"] == []
    assert len((await target.ok("GET", "/api/v1/pairs", ADMIN))["pairs"]) == 1

    # Over Socket.IO: a NUL in a message is an error ack; the sender can still chat; and a
    # token whose name has a NUL (issued before this was refused) can chat too.
    person = await SocketParticipant(target.url, target.token(room, "ada", "mentor")).connect()
    old = SocketParticipant(
        target.url,
        target.services.tokens.issue(room, "bo", f"B{NUL}o", "mentee")[0],  # type: ignore[arg-type]
    )
    try:
        await person.join(media_mode="text")
        bad = await person.chat(f"hello{NUL}", "n-1")
        assert bad["error"]["code"] == "invalid_payload", bad
        assert "id" in await person.chat("hello", "n-2")
        await old.connect()
        await old.join(media_mode="text")
        assert "id" in await old.chat("my name had a NUL", "o-1")
    finally:
        await person.close()
        await old.close()


async def test_deeply_nested_json_body_is_422_not_a_500(target: Target) -> None:
    pair = await target.pair("ada", "bo")
    ada = target.bearer(target.token(pair["room"], "ada", "mentor"))
    deep = "[" * 200_000 + "]" * 200_000
    for path, headers in [
        ("/api/v1/tokens", ADMIN),
        (f"/api/v1/pairs/{pair['id']}/agenda", ada),
        ("/api/v1/matching/profiles", ADMIN),  # parsed by the matching module itself
    ]:
        status, payload, _ = await target.call("POST", path, headers, data=deep)
        assert refused(status, payload), (path, status, payload)
    assert (await target.ok("GET", f"/api/v1/pairs/{pair['id']}/agenda", ada))["items"] == []


async def test_huge_numbers_and_lone_surrogates_are_422_not_a_500(target: Target) -> None:
    pair = await target.pair("ada", "bo")
    token = target.token(pair["room"], "ada", "mentor")
    ada = target.bearer(token)
    base = f"/api/v1/pairs/{pair['id']}"
    beyond_64_bits = "9" * 20
    for method, path, body in [
        ("GET", f"{base}/sessions/{beyond_64_bits}", None),
        ("PATCH", f"{base}/goals/{beyond_64_bits}", {"progress": 1}),
        ("PATCH", f"{base}/agenda/{beyond_64_bits}", {"done": True}),
    ]:
        status, payload, _ = await target.call(method, path, ada, body)
        assert refused(status, payload), (path, status, payload)
    profile = '[{"identity": %s, "role": "mentor", "timezone": "UTC", "capacity": %s}]'
    for data in (
        profile % ('"big"', "9" * 5000),  # more digits than Python turns into an int
        profile % ('"a\\ud800b"', "1"),  # a lone surrogate, as JSON escapes it
        profile % ('"\\udc00"', "1"),
    ):
        status, payload, _ = await target.call(
            "POST", "/api/v1/matching/profiles", ADMIN, data=data
        )
        assert refused(status, payload), (data[:60], status, payload)
    assert (await target.ok("GET", "/api/v1/matching/profiles", ADMIN))["profiles"] == []
    # A surrogate pair (an emoji) is text like any other.
    emoji = profile % ('"ada \\ud83d\\ude00"', "1")
    assert (await target.call("POST", "/api/v1/matching/profiles", ADMIN, data=emoji))[0] == 200

    # Over Socket.IO, message ids beyond 64 bits are an error ack, not an internal error.
    person = await SocketParticipant(target.url, token).connect()
    try:
        await person.join(media_mode="text")
        for event, payload in (("history", {"before": 2**63}), ("read", {"up_to": 2**64 - 1})):
            ack = await person.call(event, payload)
            assert ack["error"]["code"] == "invalid_payload", (event, ack)
        assert (await person.call("read", {"up_to": 2**63 - 1}))["up_to"] == 2**63 - 1
    finally:
        await person.close()


async def test_private_answers_are_never_cached(target: Target) -> None:
    pair = await target.pair("ada", "bo")
    pid, room = pair["id"], pair["room"]
    sid = await target.session(pair)
    ada = target.bearer(target.token(room, "ada", "mentor"))
    await target.ok("PUT", "/api/v1/program/settings", ADMIN, {"operators_read_chat": True})
    for path, who in [
        (f"/api/v1/pairs/{pid}/sessions/{sid}/transcript", ada),
        (f"/api/v1/pairs/{pid}/sessions/{sid}/transcript", ADMIN),
        (f"/api/v1/pairs/{pid}/sessions/{sid}", ada),
        (f"/api/v1/pairs/{pid}/export", ada),
        (f"/api/v1/pairs/{pid}/export?format=csv", ada),
        ("/api/v1/program/export?format=csv", ADMIN),
        (f"/api/v1/pairs/{pid}/feedback", ada),
        ("/api/v1/me/pairs", ada),
    ]:
        status, _, headers = await target.call("GET", path, who)
        assert status == 200 and headers.get("Cache-Control") == "no-store", (path, headers)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_folder_and_keys_are_private_and_the_admin_key_is_printed_once(
    tmp_path: Path,
) -> None:
    """Two starts of one data folder (each server start is seconds of the suite's time, so
    one test walks both): the first makes the folder, database and keys private and prints
    the new admin key; the second keeps that key, does not print it again, and makes private
    a database an older version left world-readable."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)  # as an older version left it
    server = ServerProcess(data_dir=data, with_keys=False).start()
    try:
        key = (data / "admin_key").read_text().strip()
        request = urllib.request.Request(
            server.url + "/api/v1/pairs",
            data=b'{"members": [{"identity": "a", "name": "A", "role": "mentor"},'
            b' {"identity": "b", "name": "B", "role": "mentee"}]}',
            method="POST",
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 201  # a write: the WAL file exists now
        assert _mode(data) == 0o700
        files = [data / "pairwise.db", data / "pairwise.db-wal", data / "pairwise.db-shm"]
        assert [(f.name, _mode(f)) for f in files] == [(f.name, 0o600) for f in files]
        assert _mode(data / "admin_key") == 0o600
    finally:
        assert server.stop() == 0
    first = server.log()
    assert "Admin key (new," in first and key in first
    assert "listening on http://127.0.0.1:" in first
    # A database an older version left world-readable is made private at the next start.
    (data / "pairwise.db").chmod(0o644)
    data.chmod(0o755)
    server.start()
    server.stop()
    assert (_mode(data), _mode(data / "pairwise.db")) == (0o700, 0o600)
    assert (data / "admin_key").read_text().strip() == key
    second = server.log()[len(first) :]
    assert "listening on" in second
    assert key not in second, second
    assert f"Admin key: in {data / 'admin_key'}" in second
