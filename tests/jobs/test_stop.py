"""Stopping a node's job runner lets the job in hand finish and settle (a restart in the
middle of a webhook delivery must not leave it leased, to be sent again when the lease
lapses), but not forever."""

from __future__ import annotations

import asyncio
from pathlib import Path

from server.jobs.clock import ManualClock
from server.jobs.runner import JobRunner
from server.jobs.store import DONE, PENDING, RUNNING, Job, JobStore
from server.store import Database
from server.store.migrate import migrate

T0 = 1_800_000_000.0


async def _runner(tmp_path: Path) -> JobRunner:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}")
    await migrate(database)
    return JobRunner(JobStore(database), "node-a", clock=ManualClock(T0), poll_seconds=60)


async def test_stop_lets_the_job_in_hand_finish(tmp_path: Path) -> None:
    runner = await _runner(tmp_path)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(job: Job) -> None:
        started.set()
        await release.wait()

    runner.handle("slow", slow)
    runner.start()
    await runner.schedule("slow", {}, T0)
    await runner.schedule("slow", {}, T0 + 60)  # not due: never started
    await asyncio.wait_for(started.wait(), 10)
    stopping = asyncio.create_task(runner.stop(grace_seconds=30))
    await asyncio.sleep(0)  # stop() is waiting, not cancelling
    assert not stopping.done()
    release.set()
    await asyncio.wait_for(stopping, 10)
    statuses = sorted(j.status for j in await runner.store.recent())
    assert statuses == [DONE, PENDING]
    await runner.store._db.close()


async def test_stop_cuts_off_a_job_that_outlasts_the_grace(tmp_path: Path) -> None:
    runner = await _runner(tmp_path)
    started = asyncio.Event()

    async def stuck(job: Job) -> None:
        started.set()
        await asyncio.Event().wait()

    runner.handle("stuck", stuck)
    runner.start()
    await runner.schedule("stuck", {}, T0)
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.wait_for(runner.stop(grace_seconds=0.1), 10)
    [job] = await runner.store.recent()
    assert job.status == RUNNING  # leased: another node takes it when the lease lapses
    await runner.store._db.close()
