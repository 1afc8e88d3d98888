"""Jobs across processes and nodes: a reminder due while the server was down is sent once
when it is back; two nodes sharing PostgreSQL send each reminder once."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from server.jobs.clock import ManualClock
from server.store import Database
from tests.conftest import ADMIN
from tests.meetings.conftest import T0, MakeNode, SmtpSink
from tests.meetings.test_meetings import ANA, BEN, FIRST, booked_pair, people
from tests.support.process import ServerProcess
from tests.support.services import fresh_postgres_database
from tests.support.waiting import eventually


@pytest.mark.postgres
async def test_two_nodes_sharing_postgres_send_each_reminder_once(
    make_node: MakeNode, smtp: SmtpSink
) -> None:
    async with fresh_postgres_database() as url:
        clock = ManualClock(T0)
        a = await make_node(clock=clock, people=people(), database_url=url, node_id="a")
        b = await make_node(clock=clock, people=people(), database_url=url, node_id="b")
        await booked_pair(a, every_weeks=1, until="2030-03-18")  # three meetings
        await asyncio.gather(a.run_jobs(), b.run_jobs())
        invites = await smtp.take(2)
        sent: Counter[tuple[str, str]] = Counter((m["To"], m["Subject"]) for m in invites)
        for week in range(3):
            start = FIRST.timestamp() + week * 7 * 86400 - (3600 if week else 0)  # US DST
            for at in (start - 86400, start - 900):
                clock.now = at
                await asyncio.gather(a.run_jobs(), b.run_jobs())  # both poll at once
                for m in await smtp.take(2):
                    sent[(m["To"], m["Subject"])] += 1
        assert smtp.drained() == []
        assert sent == Counter(
            {
                **{(f"{p}@mail.example.org", "Invitation: Weekly"): 1 for p in ("ana", "ben")},
                **{
                    (f"{p}@mail.example.org", "Reminder: Weekly in 24 hours"): 3
                    for p in ("ana", "ben")
                },
                **{
                    (f"{p}@mail.example.org", "Reminder: Weekly in 15 minutes"): 3
                    for p in ("ana", "ben")
                },
            }
        )


@pytest.mark.slow
async def test_a_reminder_due_while_the_server_is_down_is_sent_once_after_restart(
    tmp_path: Path, smtp: SmtpSink
) -> None:
    """Real server processes: the reminder falls due after the first one stopped, and the
    second starts with its jobs' clock past that moment (`jobs_clock_ahead`), as if it had
    been down until then, instead of the test waiting for it. Mail goes to the people's
    sign-in accounts, as the app wires it (`AccountEmails`)."""
    env = {
        "PAIRWISE_SMTP_HOST": "127.0.0.1",
        "PAIRWISE_SMTP_PORT": str(smtp.port),
        "PAIRWISE_SMTP_TLS": "none",
        "PAIRWISE_JOBS_POLL_SECONDS": "0.2",
        "PAIRWISE_MEETINGS_REMINDER_MINUTES": "[60]",
    }
    addresses = people().emails  # not the identities: the account's address is used
    server = ServerProcess(data_dir=tmp_path / "node", env=env)
    await asyncio.to_thread(server.start, 120)  # slow under load
    try:  # a failure here must not leave the server running
        # The reminder falls due 60 s from now: after the setup below (a few seconds, more
        # on a loaded machine) and the stop, while the server is down.
        start = time.time() + 3600 + 60
        async with aiohttp.ClientSession(server.url) as http:
            members = [
                {"identity": ANA, "name": "Ana", "role": "mentor"},
                {"identity": BEN, "name": "Ben", "role": "mentee"},
            ]
            for m in members:
                account = {
                    "identity": m["identity"],
                    "name": m["name"],
                    "email": addresses[m["identity"]],
                }
                async with http.post(
                    "/api/v1/accounts/participants", headers=ADMIN, json=account
                ) as r:
                    assert r.status == 201, await r.text()
            async with http.post(
                "/api/v1/pairs", headers=ADMIN, json={"members": members, "room": "r1"}
            ) as r:
                pair = await r.json()
            tokens = {}
            for m in members:
                body = {"room": "r1", **m}
                async with http.post("/api/v1/tokens", headers=ADMIN, json=body) as r:
                    tokens[m["identity"]] = {"Authorization": f"Bearer {(await r.json())['token']}"}
            base = f"/api/v1/pairs/{pair['id']}/meetings"
            when = datetime.fromtimestamp(start, UTC).isoformat()
            propose = {"title": "Check-in", "times": [when], "timezone": "Europe/London"}
            async with http.post(base, headers=tokens[ANA], json=propose) as r:
                assert r.status == 201, await r.text()
                meeting = await r.json()
            async with http.post(
                f"{base}/{meeting['id']}/accept", headers=tokens[BEN], json={"option": 0}
            ) as r:
                assert r.status == 200, await r.text()
        invites = await smtp.take(2)
        assert {m["Subject"] for m in invites} == {"Invitation: Check-in"}
        assert sorted(m["To"] for m in invites) == [addresses[ANA], addresses[BEN]]
    finally:
        await asyncio.to_thread(server.stop)
    due = start - 3600
    assert time.time() < due, "the setup outlasted the margin: the reminder fell due while up"
    assert smtp.drained() == []
    server.jobs_clock_ahead = due - time.time() + 0.5  # it fell due while the server was down
    await asyncio.to_thread(server.start, 120)  # slow under load
    try:
        reminders = await smtp.take(2)
        assert sorted(m["To"] for m in reminders) == [addresses[ANA], addresses[BEN]]
        assert {m["Subject"] for m in reminders} == {"Reminder: Check-in in 60 minutes"}
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'node' / 'pairwise.db'}")

        async def finished() -> list[tuple[str, int]] | None:
            async with database.connect() as conn:
                rows = (
                    await conn.exec_driver_sql(
                        "SELECT payload, status, attempts FROM jobs WHERE kind='meeting.reminder'"
                    )
                ).all()
            before = [(s, n) for p, s, n in rows if json.loads(p)["kind"] == "before60"]
            return before if all(status != "running" for status, _ in before) else None

        try:
            # A job is marked done just after its mail is sent, in another process.
            before = await eventually(finished, timeout=10, interval=0.1, what="reminder jobs")
        finally:
            await database.close()
        assert before == [("done", 1), ("done", 1)]  # each sent once, by one attempt
        assert smtp.drained() == []
    finally:
        await asyncio.to_thread(server.stop)
