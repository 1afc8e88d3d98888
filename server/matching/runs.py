"""Matching state in the database, and runs as background jobs.

A run matches the mentees who have no active pair against the mentors' remaining
places. Its results are draft pairs until an operator publishes them; publishing
creates the mentoring pairs (`PairStore`) that rooms and session logs attach to. A
rematch unpublishes a pair (its history stays), remembers the two as "not a good fit",
and starts a run for that mentee alone.

A run's work lives in the process that started it, so a run holds a lease: the row
names its node and the node renews `heartbeat_at` while the run works. A node that
starts fails its own earlier runs at once (they died with its last process); a run
whose lease lapsed (its node stopped and did not come back) is failed when it is next
read or when any node starts. Other nodes' live runs are left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from server.errors import Conflict, InvalidInput, NotFound
from server.matching.assignment import MODES
from server.matching.cohort import CohortMatch, check_fixed, match_cohort
from server.matching.criteria import Criteria, parse_criteria
from server.matching.profiles import Profile, profile_from_json, split_roles
from server.pairs.model import Member, Pair, PairStatus
from server.pairs.store import PairStore
from server.store import Database
from server.store.schema import (
    match_criteria,
    match_exclusions,
    match_profiles,
    match_results,
    match_runs,
)

log = logging.getLogger("pairwise.matching")
CHUNK = 500  # rows per statement: under SQLite's bound-parameter limit
PROGRESS_EVERY = 0.25  # seconds between progress writes
LEASE_RENEW_SECONDS = 5.0  # a running run's node renews its lease this often
LEASE_SECONDS = 30.0  # a lease not renewed for this long has lapsed
INTERRUPTED = "interrupted by a restart"
LAPSED = "interrupted: the node running it stopped"


@dataclass(frozen=True)
class Run:
    id: str
    status: str  # running | done | failed
    progress: float
    mode: str
    created_at: float
    finished_at: float | None
    summary: dict[str, Any] | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "status": self.status, "progress": round(self.progress, 3),
            "mode": self.mode, "created_at": self.created_at, "finished_at": self.finished_at,
            "summary": self.summary, "error": self.error,
        }  # fmt: skip


class MatchingStore:
    def __init__(self, database: Database, node: str):
        self._db = database
        self._node = node  # the node this store's runs run on
        self.pairs = PairStore(database)

    # -- profiles and criteria ---------------------------------------------------------

    async def save_profiles(self, profiles: Sequence[Profile]) -> None:
        """Add or replace these profiles (by identity), all in one transaction."""
        now = time.time()
        async with self._db.begin() as conn:
            for start in range(0, len(profiles), CHUNK):
                chunk = profiles[start : start + CHUNK]
                ids = [p.identity for p in chunk]
                await conn.execute(delete(match_profiles).where(match_profiles.c.identity.in_(ids)))
                await conn.execute(insert(match_profiles), [
                    {"identity": p.identity, "role": p.role, "data": json.dumps(p.to_json()),
                     "updated_at": now}
                    for p in chunk
                ])  # fmt: skip

    async def profiles(self) -> list[Profile]:
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(match_profiles.c.data).order_by(match_profiles.c.identity)
            )
            return [profile_from_json(json.loads(data)) for (data,) in rows]

    async def names(self, identities: Sequence[str]) -> dict[str, str]:
        """The profile names of `identities` (an identity with no profile is left out)."""
        wanted = sorted(set(identities))
        found: dict[str, str] = {}
        async with self._db.connect() as conn:
            for start in range(0, len(wanted), CHUNK):
                rows = await conn.execute(
                    select(match_profiles.c.identity, match_profiles.c.data).where(
                        match_profiles.c.identity.in_(wanted[start : start + CHUNK])
                    )
                )
                found.update((identity, json.loads(data)["name"]) for identity, data in rows)
        return found

    async def profile_page(
        self, after: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Up to `limit` stored profiles as JSON, by identity after `after`, and the
        identity to ask after for the next page (None on the last). Stored JSON is
        served as it is: parsing 60,000 profiles again took 32 s."""
        query = select(match_profiles.c.identity, match_profiles.c.data)
        if after is not None:
            query = query.where(match_profiles.c.identity > after)
        async with self._db.connect() as conn:
            rows = (
                await conn.execute(query.order_by(match_profiles.c.identity).limit(limit + 1))
            ).all()
        more = len(rows) > limit
        page = rows[:limit]
        return [json.loads(data) for _, data in page], page[-1][0] if more else None

    async def seniorities(self) -> list[tuple[str, str]]:
        """(identity, seniority) of every stored profile, read from the stored JSON
        without parsing whole profiles (which takes seconds for tens of thousands)."""
        async with self._db.connect() as conn:
            rows = await conn.execute(select(match_profiles.c.identity, match_profiles.c.data))
            return [(identity, json.loads(data).get("seniority") or "") for identity, data in rows]

    async def identities(self) -> list[str]:
        async with self._db.connect() as conn:
            return list((await conn.execute(select(match_profiles.c.identity))).scalars())

    async def set_criteria(self, criteria: Criteria) -> None:
        async with self._db.begin() as conn:
            await conn.execute(delete(match_criteria))
            await conn.execute(insert(match_criteria).values(
                id=1, data=json.dumps(criteria.to_json()), updated_at=time.time()
            ))  # fmt: skip

    async def criteria(self) -> Criteria | None:
        async with self._db.connect() as conn:
            data = await conn.scalar(select(match_criteria.c.data).where(match_criteria.c.id == 1))
        return parse_criteria(json.loads(data)) if data else None

    async def exclusions(self) -> list[tuple[str, str]]:
        async with self._db.connect() as conn:
            rows = await conn.execute(select(match_exclusions.c.mentee, match_exclusions.c.mentor))
            return [(mentee, mentor) for mentee, mentor in rows]

    # -- runs ----------------------------------------------------------------------------

    async def start(
        self,
        mode: str,
        fixed: Sequence[tuple[str, str]] = (),
        only: Sequence[str] | None = None,
    ) -> tuple[Run, asyncio.Task[None]]:
        """Check the inputs, record a run, and match in the background.

        The CPU work runs in a worker thread; its progress reaches the database every
        quarter second. Mentees who already have an active pair are left out (unless
        `only` names them), and mentors' places in active pairs are taken.
        """
        if mode not in MODES:
            raise InvalidInput(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        criteria = await self.criteria()
        if criteria is None:
            raise Conflict("set the matching criteria first (PUT /api/v1/matching/criteria)")
        mentees, mentors = split_roles(await self.profiles())
        active = await self.pairs.list(PairStatus.ACTIVE)
        paired = {m.identity for p in active for m in p.members if m.role == "mentee"}
        taken = Counter(m.identity for p in active for m in p.members if m.role == "mentor")
        if only is not None:
            wanted = set(only)
            mentees = [p for p in mentees if p.identity in wanted]
        else:
            mentees = [p for p in mentees if p.identity not in paired]
        if not mentees or not mentors:
            raise Conflict("import mentor and mentee profiles first: nobody to match")
        criteria.check_seniority((p.identity, p.seniority) for p in (*mentees, *mentors))
        excluded = await self.exclusions()
        check_fixed(fixed, mentees, mentors, excluded=excluded, taken=taken)
        run = Run(uuid.uuid4().hex, "running", 0.0, mode, time.time(), None, None, None)
        async with self._db.begin() as conn:
            await conn.execute(insert(match_runs).values(
                id=run.id, status=run.status, progress=0.0, mode=mode, created_at=run.created_at,
                node=self._node, heartbeat_at=run.created_at,
            ))  # fmt: skip
        job = _Job(self, run.id)
        task = asyncio.create_task(
            job.run(
                lambda: match_cohort(
                    mentees,
                    mentors,
                    criteria,
                    mode,
                    fixed=fixed,
                    excluded=excluded,
                    taken=taken,
                    progress=job.report,
                )
            )  # fmt: skip
        )
        return run, task

    async def run(self, run_id: str) -> Run:
        row = await self._read_run(run_id)
        if row.status == "running" and _lapsed(row.heartbeat_at or row.created_at):
            async with self._db.begin() as conn:
                await conn.execute(_fail_lapsed().where(match_runs.c.id == run_id))
            row = await self._read_run(run_id)
        data = row._mapping
        return Run(
            data["id"], data["status"], data["progress"], data["mode"], data["created_at"],
            data["finished_at"], json.loads(data["summary"]) if data["summary"] else None,
            data["error"],
        )  # fmt: skip

    async def _read_run(self, run_id: str) -> Any:
        async with self._db.connect() as conn:
            row = (await conn.execute(select(match_runs).where(match_runs.c.id == run_id))).first()
        if row is None:
            raise NotFound(f"no matching run {run_id!r}")
        return row

    async def results(self, run_id: str) -> list[dict[str, Any]]:
        await self.run(run_id)
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(match_results).where(match_results.c.run_id == run_id)
                .order_by(match_results.c.id)
            )  # fmt: skip
            return [_result_json(row._mapping) for row in rows]

    async def fail_abandoned(self) -> int:
        """Fail the runs nobody is working on: this node's still `running` (call once at
        start-up, before any run starts here) and any whose lease lapsed. Returns how many."""
        async with self._db.begin() as conn:
            own = await conn.execute(
                update(match_runs)
                .where(match_runs.c.status == "running", match_runs.c.node == self._node)
                .values(status="failed", finished_at=time.time(), error=INTERRUPTED)
            )
            lapsed = await conn.execute(_fail_lapsed())
        return int(own.rowcount or 0) + int(lapsed.rowcount or 0)

    async def _progress(self, run_id: str, progress: float) -> None:
        """Record progress and renew the run's lease."""
        async with self._db.begin() as conn:
            await conn.execute(
                update(match_runs)
                .where(match_runs.c.id == run_id)
                .values(progress=progress, heartbeat_at=time.time())
            )

    async def _finish(self, run_id: str, outcome: CohortMatch) -> None:
        rows = [
            {"run_id": run_id, "mentee": r.mentee, "mentor": r.mentor, "score": r.score,
             "contributions": json.dumps(r.contributions), "explanation": json.dumps(r.explanation),
             "slots": json.dumps(r.slots), "reason": r.reason, "fixed": r.fixed, "status": "draft",
             "pair_id": None}
            for r in outcome.results
        ]  # fmt: skip
        async with self._db.begin() as conn:
            for start in range(0, len(rows), CHUNK):
                await conn.execute(insert(match_results), rows[start : start + CHUNK])
            await conn.execute(update(match_runs).where(match_runs.c.id == run_id).values(
                status="done", progress=1.0, finished_at=time.time(),
                summary=json.dumps(outcome.summary),
            ))  # fmt: skip

    async def _fail(self, run_id: str, error: str) -> None:
        async with self._db.begin() as conn:
            await conn.execute(update(match_runs).where(match_runs.c.id == run_id).values(
                status="failed", finished_at=time.time(), error=error
            ))  # fmt: skip

    # -- publishing ------------------------------------------------------------------------

    async def publish(self, run_id: str) -> list[Pair]:
        """Create a mentoring pair for each draft pair of a finished run. Publishing
        again creates nothing new: it returns the pairs already made."""
        run = await self.run(run_id)
        if run.status != "done":
            raise Conflict(f"run {run_id!r} is {run.status}; only a finished run can be published")
        async with self._db.connect() as conn:
            rows = (await conn.execute(
                select(match_results.c.id, match_results.c.mentee, match_results.c.mentor,
                       match_results.c.status, match_results.c.pair_id)
                .where(match_results.c.run_id == run_id, match_results.c.mentor.is_not(None))
                .order_by(match_results.c.id)
            )).all()  # fmt: skip
        drafts = [r for r in rows if r.status == "draft"]
        active = await self.pairs.list(PairStatus.ACTIVE)
        in_pair = {m.identity: p.id for p in active for m in p.members if m.role == "mentee"}
        clash = [r.mentee for r in drafts if r.mentee in in_pair]
        if clash:
            raise Conflict(
                f"mentee {clash[0]!r} already has an active pair {in_pair[clash[0]]!r}; "
                "rematch or unpublish it first"
            )
        names = await self.names([i for r in drafts for i in (r.mentor, r.mentee)])
        for r in drafts:
            pair = await self.pairs.create(
                [Member(r.mentor, names.get(r.mentor, r.mentor), "mentor"),
                 Member(r.mentee, names.get(r.mentee, r.mentee), "mentee")],
                source="matching",
            )  # fmt: skip
            # One row at a time: if publishing stops halfway, running it again finishes it.
            async with self._db.begin() as conn:
                await conn.execute(update(match_results).where(match_results.c.id == r.id)
                                   .values(status="published", pair_id=pair.id))  # fmt: skip
        async with self._db.connect() as conn:
            ids = (await conn.execute(
                select(match_results.c.pair_id)
                .where(match_results.c.run_id == run_id, match_results.c.pair_id.is_not(None))
                .order_by(match_results.c.id)
            )).scalars().all()  # fmt: skip
        return [await self.pairs.get(pair_id) for pair_id in ids]

    async def rematch(self, pair_id: str) -> tuple[Pair, Run, asyncio.Task[None]]:
        """ "Not a good fit": unpublish the pair, never propose these two again, and start
        a run for the mentee. The pair, its room and its session log stay."""
        pair = await self.pairs.get(pair_id)
        if pair.status != PairStatus.ACTIVE:  # a second click must not start a second run
            raise Conflict(
                f"pair {pair_id!r} is already {pair.status}; there is nothing to rematch"
            )
        if await self.criteria() is None:
            raise Conflict("set the matching criteria first (PUT /api/v1/matching/criteria)")
        mentee = next((m.identity for m in pair.members if m.role == "mentee"), None)
        mentor = next((m.identity for m in pair.members if m.role == "mentor"), None)
        if mentee is None or mentor is None:
            raise InvalidInput(f"pair {pair_id!r} has no mentor and mentee to rematch")
        if mentee not in {p.identity for p in await self.profiles()}:
            raise Conflict(f"mentee {mentee!r} has no matching profile")
        unpublished = await self.pairs.set_status(pair_id, PairStatus.UNPUBLISHED)
        async with self._db.begin() as conn:
            await conn.execute(delete(match_exclusions).where(
                match_exclusions.c.mentee == mentee, match_exclusions.c.mentor == mentor
            ))  # fmt: skip
            await conn.execute(insert(match_exclusions).values(
                mentee=mentee, mentor=mentor, pair_id=pair_id, created_at=time.time()
            ))  # fmt: skip
            await conn.execute(update(match_results).where(match_results.c.pair_id == pair_id)
                               .values(status="rematched"))  # fmt: skip
        run, task = await self.start("optimal", only=[mentee])
        return unpublished, run, task


class _Job:
    """One run in flight: the worker thread reports progress; the loop writes it."""

    def __init__(self, store: MatchingStore, run_id: str):
        self.store = store
        self.run_id = run_id
        self.progress = 0.0

    def report(self, fraction: float) -> None:
        self.progress = fraction  # a float store: safe from the worker thread

    async def run(self, work: Any) -> None:
        done = asyncio.Event()

        async def tick() -> None:
            written, renewed = -1.0, time.monotonic()
            while not done.is_set():
                if self.progress != written or time.monotonic() - renewed >= LEASE_RENEW_SECONDS:
                    written, renewed = self.progress, time.monotonic()
                    await self.store._progress(self.run_id, min(written, 0.99))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PROGRESS_EVERY):
                        await done.wait()

        ticker = asyncio.create_task(tick())
        try:
            outcome = await asyncio.to_thread(work)
        except Exception as exc:  # the run records why; the server carries on
            done.set()
            await ticker
            message = exc.message if isinstance(exc, InvalidInput) else f"internal error: {exc}"
            log.exception("matching run failed", extra={"run": self.run_id})
            await self.store._fail(self.run_id, message)
            return
        done.set()
        await ticker
        await self.store._finish(self.run_id, outcome)


def _lapsed(heartbeat_at: float) -> bool:
    return heartbeat_at < time.time() - LEASE_SECONDS


def _fail_lapsed() -> Any:
    """An UPDATE failing every running run whose lease lapsed (narrow it with `.where`)."""
    cutoff = time.time() - LEASE_SECONDS
    renewed = func.coalesce(match_runs.c.heartbeat_at, match_runs.c.created_at)
    return (
        update(match_runs)
        .where(match_runs.c.status == "running", renewed < cutoff)
        .values(status="failed", finished_at=time.time(), error=LAPSED)
    )


def _result_json(row: Any) -> dict[str, Any]:
    return {
        "mentee": row["mentee"],
        "mentor": row["mentor"],
        "score": row["score"],
        "contributions": json.loads(row["contributions"]),
        "explanation": json.loads(row["explanation"]),
        "slots": json.loads(row["slots"]),
        "reason": row["reason"],
        "fixed": bool(row["fixed"]),
        "status": row["status"],
        "pair_id": row["pair_id"],
    }
