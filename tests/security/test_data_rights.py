"""Data rights: a participant downloads what is held about them and asks for erasure; an
operator erases them, and ended pairs' chat goes after the retention period.

Verified in the database itself, not only through the API: on SQLite the bytes of
`pairwise.db` and its WAL must not contain what was erased (SQLite keeps deleted rows in
free pages unless secure_delete is on); on PostgreSQL every table is read back over a
separate connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import socketio
from sqlalchemy import event, insert
from sqlalchemy.engine import make_url

from server.privacy.audit import PrivacyLog
from server.privacy.erasure import forget
from server.privacy.export import personal_data
from server.privacy.inventory import NOT_PERSONAL, PERSON_COLUMNS
from server.privacy.retention import DAY, apply_retention, retention_job
from server.store import Database, schema
from server.store.migrate import migrate
from tests.conftest import ADMIN
from tests.support.participants import SocketParticipant, issue_token
from tests.support.process import ServerProcess
from tests.support.waiting import eventually

ZELDA = "zelda.quixotic@example.org"
SECRETS = ("zebra-chat-4711", "zebra-agenda-4711", "zebra-goal-4711", "zebra-feedback-4711")
TRACES = (*SECRETS, "Quixotic", "quixotic@example", "Xylophone-Lessons")


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: dict[str, str],
    body: Any = None,
    status: int = 200,
) -> Any:
    async with http.request(method, url, headers=headers, json=body) as resp:
        payload = await resp.json()
        assert resp.status == status, payload
        return payload


async def leftovers(database_url: str, traces: tuple[str, ...]) -> list[str]:
    """Which traces can still be found in the database's files (SQLite) or rows (PostgreSQL)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        files = [Path(str(url.database)), Path(f"{url.database}-wal")]
        blob = b"".join(f.read_bytes() for f in files if f.exists())
        return [t for t in traces if t.encode() in blob]
    import asyncpg

    conn = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(False))
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        text = ""
        for row in tables:
            rows = await conn.fetch(f'SELECT t::text AS r FROM "{row["table_name"]}" t')
            text += "\n".join(r["r"] for r in rows)
    finally:
        await conn.close()
    return [t for t in traces if t in text]


async def test_erased_participants_data_is_gone_from_the_database_files(
    server_process: Callable[..., ServerProcess], database_url: str
) -> None:
    server = await asyncio.to_thread(
        server_process, PAIRWISE_DATABASE_URL=database_url, PAIRWISE_ROOM_GRACE_SECONDS="0"
    )
    api = server.url + "/api/v1"
    async with aiohttp.ClientSession() as http:
        profile = {
            "identity": ZELDA,
            "name": "Zelda Quixotic",
            "role": "mentee",
            "timezone": "Europe/Paris",
            "goals": ["Xylophone-Lessons"],
        }
        await call(http, "POST", api + "/matching/profiles", ADMIN, [profile])
        members = [
            {"identity": ZELDA, "name": "Zelda Quixotic", "role": "mentee"},
            {"identity": "bob", "name": "Bob", "role": "mentor"},
        ]
        pair = await call(http, "POST", api + "/pairs", ADMIN, {"members": members}, 201)
        token = await asyncio.to_thread(
            issue_token, server.url, pair["room"], ZELDA, "Zelda Quixotic"
        )
        zelda = {"Authorization": f"Bearer {token}"}
        person = await SocketParticipant(server.url, token).connect()
        await person.join()
        await person.chat(SECRETS[0], "z-1")
        await person.call("leave")
        await person.sio.disconnect()
        base = f"{api}/pairs/{pair['id']}"

        async def recorded() -> list[dict[str, Any]]:
            return list((await call(http, "GET", base + "/sessions", ADMIN))["sessions"])

        sessions = await eventually(recorded, what="a session recorded")
        await call(http, "POST", base + "/agenda", zelda, {"text": SECRETS[1]}, 201)
        await call(http, "POST", base + "/goals", zelda, {"title": SECRETS[2]}, 201)
        await call(
            http,
            "POST",
            f"{base}/sessions/{sessions[0]['id']}/feedback",
            zelda,
            {"rating": 2, "comment": SECRETS[3], "good_fit": False},
            201,
        )

        # The participant's download holds all of it.
        mine = await call(http, "GET", api + "/me/data", zelda)
        text = repr(mine)
        assert all(secret in text for secret in SECRETS), text
        assert mine["profile"]["name"] == "Zelda Quixotic"
        assert mine["session_attendance.identity"], "attendance is part of the download"
        # ... and nothing of Bob's.
        assert all(row["identity"] == ZELDA for row in mine["chat_messages.identity"])

        # The request is recorded for the operator.
        await call(http, "POST", api + "/me/erasure-request", zelda, None, 201)
        listed = await call(http, "GET", api + "/privacy/erasure-requests", ADMIN)
        assert [r["identity"] for r in listed["requests"]] == [ZELDA]

        assert await leftovers(database_url, SECRETS[:1]) == [SECRETS[0]], "the check can see"
        back = await SocketParticipant(server.url, token).connect()
        await back.join()
        operator = {**ADMIN, "X-Pairwise-Operator": "dana"}
        done = await call(
            http, "POST", f"{api}/privacy/people/{ZELDA}/forget", operator, {"mode": "erase"}
        )
        pseudonym = done["pseudonym"]
        # Their live connection was cut before the erasure.
        await eventually(
            lambda: not back.sio.connected, timeout=10, what="the erased participant cut off"
        )

        # The token they still hold opens nothing any more: not the API, not the room.
        revoked = await call(http, "GET", api + "/me/data", zelda, None, 401)
        assert revoked["error"]["code"] == "token_revoked"
        await call(http, "GET", f"{base}/goals", zelda, None, 401)
        again = SocketParticipant(server.url, token)
        with contextlib.suppress(socketio.exceptions.ConnectionError):
            await again.connect()
        assert not again.sio.connected, "an erased person's old token joined the room"

        # Through the API: the partner sees "removed" from a removed participant.
        transcript = await call(
            http, "GET", f"{base}/sessions/{sessions[0]['id']}/transcript", {
                "Authorization": "Bearer "
                + await asyncio.to_thread(issue_token, server.url, pair["room"], "bob", "Bob", "mentor")
            }
        )  # fmt: skip
        assert [(m["from"]["name"], m["text"]) for m in transcript["messages"]] == [
            ("Removed participant", "removed")
        ]
        entries = (await call(http, "GET", api + "/privacy/audit", ADMIN))["entries"]
        erased = next(e for e in entries if e["action"] == "erase")  # tokens are audited too
        assert (erased["actor"], erased["action"], erased["subject"]) == (
            "dana",
            "erase",
            pseudonym,
        )
        done_requests = await call(
            http, "GET", api + "/privacy/erasure-requests?status=done", ADMIN
        )
        assert [r["identity"] for r in done_requests["requests"]] == [pseudonym]
        # Erasing someone unknown is a clear error and changes nothing.
        await call(
            http, "POST", f"{api}/privacy/people/nobody/forget", ADMIN, {"mode": "erase"}, 404
        )

    # In the database: none of it, in any table, in any free page or the WAL.
    assert await leftovers(database_url, TRACES) == []


async def test_retention_deletes_ended_pairs_chat_from_the_files(
    database_url: str,
) -> None:
    database = Database(database_url)
    await migrate(database)
    now = 1_000 * DAY
    async with database.begin() as conn:
        for pair_id, status in (
            ("ended", "unpublished"),
            ("live", "active"),
            ("recent", "unpublished"),
        ):
            await conn.execute(
                insert(schema.pairs).values(
                    id=pair_id, room=f"room-{pair_id}", title=pair_id, status=status,
                    source="operator", flagged=False, created_at=0.0,
                )
            )  # fmt: skip
            ts = now - (1 if pair_id == "recent" else 40) * DAY
            await conn.execute(
                insert(schema.chat_messages).values(
                    room=f"room-{pair_id}", identity="ann", name="Ann", client_id="c1",
                    text=f"retained-secret-{pair_id}", ts=ts,
                )
            )  # fmt: skip
    purged = await apply_retention(database, days=30, now=now)
    await database.close()
    assert [(p.pair_id, p.messages) for p in purged] == [("ended", 1)]
    found = await leftovers(database_url, ("retained-secret-ended", "retained-secret-live"))
    assert found == ["retained-secret-live"]
    # Running again changes nothing.
    database = Database(database_url)
    assert await apply_retention(database, days=30, now=now) == []
    await database.close()


def test_every_column_naming_a_person_is_in_the_inventory() -> None:
    """A table added later with a person in it must be erased too, or say why not."""
    person_like = re.compile(
        r"^(identity|author|added_by|done_by|created_by|mentee|mentor|actor|subject)$"
    )
    listed = {entry.key for entry in PERSON_COLUMNS} | set(NOT_PERSONAL)
    found = {
        f"{table.name}.{column.name}"
        for table in schema.metadata.tables.values()
        for column in table.columns
        if person_like.match(column.name)
    }
    assert found - listed == set()


async def test_erasure_zeroes_freed_bytes_where_sqlite_keeps_them_by_default(
    tmp_path: Path,
) -> None:
    """Debian builds SQLite with secure_delete on; most builds do not. With it off, an
    overwritten chat message stays readable in the file unless erasure turns it on."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'pairwise.db'}"
    database = Database(url)

    def default_off(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.cursor().execute("PRAGMA secure_delete=OFF")

    event.listen(database.engine.sync_engine, "connect", default_off)
    await migrate(database)
    async with database.begin() as conn:
        for n in range(50):  # enough rows that the page is rewritten, not replaced
            await conn.execute(
                insert(schema.chat_messages).values(
                    room="r", identity=ZELDA if n == 7 else "bob", name="Zelda Quixotic" if n == 7 else "Bob",
                    client_id=f"c{n}", text=f"{SECRETS[0]}" if n == 7 else f"hello {n}", ts=float(n),
                )
            )  # fmt: skip
            await conn.execute(
                insert(schema.match_profiles).values(
                    identity=ZELDA if n == 7 else f"p{n}", role="mentee", updated_at=0.0,
                    data='{"goals": ["Xylophone-Lessons"]}' if n == 7 else '{"goals": []}',
                )
            )  # fmt: skip
    await forget(database, ZELDA, "erase", "dana")
    await database.close()
    assert await leftovers(url, TRACES) == []


async def test_anonymising_keeps_what_they_wrote_but_not_who_they_were(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'pairwise.db'}")
    await migrate(database)
    async with database.begin() as conn:
        await conn.execute(
            insert(schema.pairs).values(
                id="p1", room="room-1", title="Zelda Quixotic & Bob", status="active",
                source="operator", flagged=False, created_at=0.0,
            )
        )  # fmt: skip
        for identity, name in ((ZELDA, "Zelda Quixotic"), ("bob", "Bob")):
            await conn.execute(
                insert(schema.pair_members).values(
                    pair_id="p1", identity=identity, name=name, role="mentee"
                )
            )
        await conn.execute(
            insert(schema.chat_messages).values(
                room="room-1", identity=ZELDA, name="Zelda Quixotic", client_id="c1",
                text="a question worth keeping", ts=1.0,
            )
        )  # fmt: skip
    outcome = await forget(database, ZELDA, "anonymise", "dana")
    data = await personal_data(database, outcome.pseudonym)
    await database.close()
    assert [(m["name"], m["text"]) for m in data["chat_messages.identity"]] == [
        ("Removed participant", "a question worth keeping")
    ]
    assert data["pairs"] == [
        {
            "id": "p1",
            "title": "Removed participant & Bob",
            "status": "active",
            "role": "mentee",
            "name": "Removed participant",
        }
    ]
    assert outcome.changed == {"chat_messages.identity": 1, "pair_members.identity": 1}
    assert await leftovers(str(database.url), ("Quixotic", "zelda")) == []


async def test_the_retention_job_runs_at_start_with_its_clock(tmp_path: Path) -> None:
    """The periodic job (a cleanup context) purges at once, judged by the injected clock."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'pairwise.db'}"
    database = Database(url)
    await migrate(database)
    async with database.begin() as conn:
        await conn.execute(
            insert(schema.pairs).values(
                id="old", room="room-old", title="t", status="unpublished",
                source="operator", flagged=False, created_at=0.0,
            )
        )  # fmt: skip
        await conn.execute(
            insert(schema.chat_messages).values(
                room="room-old", identity="ann", name="Ann", client_id="c1",
                text="retained-secret-old", ts=1.0,
            )
        )  # fmt: skip
    context = retention_job(database, days=30, interval=3600, clock=lambda: 31 * DAY + 1)
    running = context(None).__aiter__()
    await running.__anext__()

    async def swept() -> bool:
        return not await leftovers(url, ("retained-secret-old",))

    await eventually(swept, timeout=10, what="the retention job run")
    entries = await PrivacyLog(database).entries()
    assert [(e.actor, e.action, e.subject, e.detail["messages"]) for e in entries] == [
        ("retention", "retention", "old", 1)
    ]
    with contextlib.suppress(StopAsyncIteration):
        await running.__anext__()
    await database.close()


async def test_privacy_routes_refuse_bad_input_and_the_wrong_caller(
    server_process: Callable[..., ServerProcess],
) -> None:
    server = await asyncio.to_thread(server_process)
    api = server.url + "/api/v1"
    token = await asyncio.to_thread(issue_token, server.url, "room-1", "ann")
    observer = await asyncio.to_thread(
        issue_token, server.url, "room-1", "olga", "Olga", "observer"
    )
    member = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        forget_url = f"{api}/privacy/people/ann/forget"
        await call(http, "POST", forget_url, member, {"mode": "erase"}, 403)
        await call(http, "POST", forget_url, ADMIN, {"mode": "shred"}, 422)
        await call(http, "POST", f"{api}/privacy/people/%20x/forget", ADMIN, {"mode": "erase"}, 422)
        await call(http, "GET", api + "/me/data", ADMIN, None, 403)
        await call(
            http, "GET", api + "/me/data", {"Authorization": f"Bearer {observer}"}, None, 403
        )
        await call(http, "GET", api + "/privacy/audit", member, None, 403)
        await call(http, "GET", api + "/privacy/audit", {}, None, 401)
        off = await call(http, "POST", api + "/privacy/retention", ADMIN, None, 409)
        assert off["error"]["code"] == "retention_off"
        # Nothing was changed by any of it (only the two tokens issued above are audited).
        entries = (await call(http, "GET", api + "/privacy/audit", ADMIN))["entries"]
        assert [e["action"] for e in entries] == ["token_issue", "token_issue"]
