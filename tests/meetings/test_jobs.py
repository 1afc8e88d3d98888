"""Durable jobs on SQLite and PostgreSQL: due jobs run once, failures retry with backoff,
a lapsed lease is taken again, jobs survive a restart, and nodes sharing the database
run each job once."""

from __future__ import annotations

import asyncio
from collections import Counter

from server.jobs.clock import ManualClock
from server.jobs.runner import JobRunner, RetryPolicy
from server.jobs.store import DONE, FAILED, PENDING, Job, JobStore
from server.store import Database
from server.store.migrate import migrate

T0 = 1_800_000_000.0


async def _runner(url: str, clock: ManualClock, owner: str = "node-a", **kw: object) -> JobRunner:
    database = Database(url)
    await migrate(database)
    return JobRunner(JobStore(database), owner, clock=clock, **kw)  # type: ignore[arg-type]


async def _close(runner: JobRunner) -> None:
    await runner.store._db.close()


async def test_a_due_job_runs_once_and_a_later_one_waits(database_url: str) -> None:
    clock = ManualClock(T0)
    runner = await _runner(database_url, clock)
    ran: list[str] = []

    async def note(job: Job) -> None:
        ran.append(job.payload["what"])

    runner.handle("note", note)
    await runner.schedule("note", {"what": "now"}, T0)
    await runner.schedule("note", {"what": "later"}, T0 + 60)
    assert await runner.schedule("note", {"what": "dup"}, T0)
    assert await runner.schedule("note", {"what": "keyed"}, T0, key="k1")
    assert not await runner.schedule("note", {"what": "keyed again"}, T0, key="k1")
    assert await runner.run_due() == 3
    assert sorted(ran) == ["dup", "keyed", "now"]
    assert await runner.run_due() == 0
    clock.advance(60)
    assert await runner.run_due() == 1
    assert ran[-1] == "later"
    assert {j.status for j in await runner.store.recent()} == {DONE}
    await _close(runner)


async def test_a_failing_job_is_retried_with_backoff_then_failed(database_url: str) -> None:
    clock = ManualClock(T0)
    policy = RetryPolicy(max_attempts=3, first_delay=10, max_delay=15)
    runner = await _runner(database_url, clock, retry=policy)
    tries: list[float] = []

    async def flaky(job: Job) -> None:
        tries.append(clock())
        raise RuntimeError("receiver said 500")

    runner.handle("flaky", flaky)
    await runner.schedule("flaky", {}, T0)
    assert await runner.run_due() == 1
    assert await runner.run_due() == 0  # not before its backoff
    clock.advance(9)
    assert await runner.run_due() == 0
    clock.advance(1)
    assert await runner.run_due() == 1  # 10 s after the first failure
    clock.advance(15)  # 10 * 2 = 20, capped at 15
    assert await runner.run_due() == 1
    clock.advance(3600)
    assert await runner.run_due() == 0  # three attempts: failed for good
    assert tries == [T0, T0 + 10, T0 + 25]
    (job,) = await runner.store.recent()
    assert job.status == FAILED and job.attempts == 3
    assert job.last_error == "RuntimeError: receiver said 500"
    await _close(runner)


async def test_a_lapsed_lease_is_taken_again_and_the_old_owner_cannot_settle(
    database_url: str,
) -> None:
    clock = ManualClock(T0)
    a = await _runner(database_url, clock, "node-a", lease_seconds=60)
    b = await _runner(database_url, clock, "node-b", lease_seconds=60)
    await a.schedule("x", {}, T0)
    (taken,) = await a.store.claim("node-a", T0, 60, 10)  # node-a took it, then died
    assert await b.store.claim("node-b", T0 + 59, 60, 10) == []
    (again,) = await b.store.claim("node-b", T0 + 61, 60, 10)
    assert again.id == taken.id and again.attempts == 2
    assert not await a.store.finish(taken, "node-a", T0 + 62)  # its lease is gone
    assert await b.store.finish(again, "node-b", T0 + 62)
    await _close(a)
    await _close(b)


async def test_a_job_due_while_the_server_was_down_runs_once_after_restart(
    database_url: str,
) -> None:
    clock = ManualClock(T0)
    before = await _runner(database_url, clock)
    await before.schedule("remind", {"n": 1}, T0 + 600, key="meeting:1:15m")
    assert await before.run_due() == 0
    await _close(before)  # the server stops
    clock.advance(3600)  # and stays down past the job's time
    after = await _runner(database_url, clock)
    ran: list[int] = []

    async def remind(job: Job) -> None:
        ran.append(job.payload["n"])

    after.handle("remind", remind)
    assert await after.run_due() == 1
    assert await after.run_due() == 0
    assert ran == [1]
    await _close(after)


async def test_nodes_sharing_the_database_run_each_job_once(database_url: str) -> None:
    clock = ManualClock(T0)
    nodes = [await _runner(database_url, clock, f"node-{i}", batch=7) for i in range(3)]
    ran: Counter[int] = Counter()
    by: Counter[str] = Counter()

    for node in nodes:

        def handler(owner: str) -> object:
            async def run(job: Job) -> None:
                ran[job.payload["n"]] += 1
                by[owner] += 1
                await asyncio.sleep(0)  # let the other nodes claim meanwhile

            return run

        node.handle("n", handler(node.owner))  # type: ignore[arg-type]
    for n in range(60):
        await nodes[0].schedule("n", {"n": n}, T0 - n)
    total = 0
    while counts := sum(await asyncio.gather(*(node.run_due() for node in nodes))):
        total += counts
    assert total == 60
    assert ran == Counter(range(60))  # every job once, none twice
    if not database_url.startswith("sqlite"):
        # PostgreSQL claims with SKIP LOCKED, so the nodes really share the work; SQLite
        # serialises writers, and one node may claim every batch before the others start.
        assert len(by) >= 2
    pending = [j for j in await nodes[0].store.recent() if j.status == PENDING]
    assert pending == []
    for node in nodes:
        await _close(node)


async def test_cancel_by_key_prefix_leaves_other_jobs(database_url: str) -> None:
    clock = ManualClock(T0)
    runner = await _runner(database_url, clock)
    ran: list[str] = []

    async def note(job: Job) -> None:
        ran.append(str(job.key))

    runner.handle("note", note)
    await runner.schedule("note", {}, T0, key="meeting:a_1:24h")
    await runner.schedule("note", {}, T0, key="meeting:a%1:24h")
    await runner.schedule("note", {}, T0, key="meeting:b:24h")
    assert await runner.store.cancel("meeting:a_") == 1  # `_` and `%` are not wildcards
    await runner.run_due()
    assert sorted(ran) == ["meeting:a%1:24h", "meeting:b:24h"]
    await _close(runner)
