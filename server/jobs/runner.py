"""Run due jobs: poll, claim under a lease, call the handler of the job's kind, settle.

A handler that raises is retried with exponential backoff (`RetryPolicy.delay(attempts)`)
up to `max_attempts`, then the job is failed and kept with its last error. A kind may have
its own policy (webhook deliveries retry on their operator's schedule, not the reminders'). Handlers are plain
async functions of the job; they must tolerate running again after a node died mid-job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from server.jobs.clock import Clock, system_clock
from server.jobs.store import Job, JobStore

log = logging.getLogger("pairwise.jobs")

Handler = Callable[[Job], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    first_delay: float = 30.0
    max_delay: float = 3600.0

    def delay(self, attempts: int) -> float | None:
        """Seconds until the next try after `attempts` failed ones; None: give up."""
        if attempts >= self.max_attempts:
            return None
        return float(min(self.max_delay, self.first_delay * 2 ** (attempts - 1)))


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        owner: str,
        *,
        clock: Clock = system_clock,
        poll_seconds: float = 5.0,
        lease_seconds: float = 300.0,
        batch: int = 20,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.store = store
        self.owner = owner
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.batch = batch
        self.retry_policy = retry or RetryPolicy()
        self._handlers: dict[str, Handler] = {}
        self._policies: dict[str, RetryPolicy] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    def handle(self, kind: str, handler: Handler, *, retry: RetryPolicy | None = None) -> None:
        """Run jobs of `kind` with `handler`, retried by `retry` (default: the runner's)."""
        if kind in self._handlers:
            raise ValueError(f"jobs of kind {kind!r} already have a handler")
        self._handlers[kind] = handler
        if retry is not None:
            self._policies[kind] = retry

    def policy(self, kind: str) -> RetryPolicy:
        """How jobs of `kind` are retried (a handler may need to know its last try)."""
        return self._policies.get(kind, self.retry_policy)

    async def schedule(
        self, kind: str, payload: dict[str, object], run_at: float, *, key: str | None = None
    ) -> bool:
        added = await self.store.schedule(kind, payload, run_at, key=key)
        if added and run_at <= self.clock():
            self._wake.set()
        return added

    async def run_due(self) -> int:
        """One pass: claim and run every job due now; how many ran (successfully or not)."""
        ran = 0
        while True:
            claimed = await self.store.claim(
                self.owner, self.clock(), self.lease_seconds, self.batch
            )
            for job in claimed:
                await self._run(job)
            ran += len(claimed)
            # (On SQLite, a node that lost every race for a batch also stops.)
            if not claimed or self._stopping:
                return ran

    async def _run(self, job: Job) -> None:
        handler = self._handlers.get(job.kind)
        try:
            if handler is None:
                raise LookupError(f"no handler for jobs of kind {job.kind!r}")
            await handler(job)
        except Exception as exc:  # a job's failure is recorded, never the runner's end
            delay = self.policy(job.kind).delay(job.attempts)
            run_at = None if delay is None else self.clock() + delay
            await self.store.retry(job, self.owner, f"{type(exc).__name__}: {exc}", run_at)
            log.warning(
                "job failed",
                extra={"job": job.id, "kind": job.kind, "attempt": job.attempts, "retry": run_at},
            )
            return
        await self.store.finish(job, self.owner, self.clock())

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="jobs")

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Stop polling. Jobs already taken get `grace_seconds` to finish and settle: one
        cut off midway (a webhook sent, its answer not yet written down) would stay leased
        until its lease lapsed, and then run again."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            async with asyncio.timeout(grace_seconds):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            self._stopping = False

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self.run_due()
            except Exception:  # the database went away for a moment: poll again later
                log.exception("jobs poll failed")
            if self._stopping:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
