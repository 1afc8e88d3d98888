"""Booking meetings: propose, accept, move, cancel; and what each change sends.

Every message goes out through a durable job (`server.jobs`), one per person and purpose,
so a restart or a second node neither loses nor repeats it, and a failing SMTP server is
retried with backoff. A job carries the meeting's SEQUENCE when it was scheduled; once the
meeting has moved on (moved again, cancelled) the old job finds a different SEQUENCE and
sends nothing. Only members of an active pair may book; ending a pair cancels its
meetings to come, and reminders of a pair that ended are not sent.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage

from server.errors import Conflict, Forbidden, InvalidInput
from server.jobs.runner import JobRunner
from server.jobs.store import Job
from server.mail import Mailer, MailOff
from server.matching.availability import Calendar
from server.matching.profiles import check_timezone
from server.matching.slots import Slot, suggest_slots
from server.meetings import calendar
from server.meetings.directory import Directory
from server.meetings.feeds import CalendarFeeds
from server.meetings.model import BOOKED, CANCELLED, PROPOSED, Meeting, local_text
from server.meetings.people import Profiles
from server.meetings.store import MeetingStore
from server.meetings.text import has_control, plain, require_plain
from server.pairs.model import Member, Pair, PairStatus
from server.pairs.store import PairStore
from server.push.service import Notice, Push
from server.push.store import Channels

log = logging.getLogger("pairwise.meetings")

INVITE, REMINDER = "meeting.invite", "meeting.reminder"
MAX_OPTIONS = 5
MAX_SERIES_DAYS = 366
# How far ahead a meeting may be put: a year (a time in year 9999 overflows in some zones).
MAX_AHEAD_DAYS = 366

Presence = Callable[[str], Awaitable[set[str]]]  # room -> identities in it now, on any node
# (room, member) -> {"number", "pin"}: the member's own PIN for the room
DialIn = Callable[[str, Member], Awaitable[dict[str, str] | None]]


@dataclass(frozen=True)
class Reminders:
    before_minutes: tuple[int, ...] = (24 * 60, 15)
    absent_minutes: int = 5


class Meetings:
    def __init__(
        self,
        store: MeetingStore,
        pairs: PairStore,
        profiles: Profiles,
        jobs: JobRunner,
        mailer: Mailer,
        directory: Directory,
        feeds: CalendarFeeds,
        *,
        base_url: str,
        presence: Presence,
        dial_in: DialIn | None = None,
        reminders: Reminders | None = None,
        push: Push | None = None,
    ) -> None:
        self.store = store
        self.pairs = pairs
        self.profiles = profiles
        self.jobs = jobs
        self.mailer = mailer
        self.directory = directory
        self.feeds = feeds
        self.base_url = base_url.rstrip("/")
        self.presence = presence
        self.dial_in = dial_in
        self.reminders = reminders or Reminders()
        self.push = push  # reminders by web push too, for members who chose it
        jobs.handle(INVITE, self._send_invite)
        jobs.handle(REMINDER, self._send_reminder)

    @property
    def join_url(self) -> str:
        # The person's home: it asks them to sign in, then mints a join token (never mailed).
        return f"{self.base_url}/me"

    @property
    def domain(self) -> str:
        return self.base_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0] or "pairwise"

    def _now(self) -> float:
        return self.jobs.clock()

    # -- booking -------------------------------------------------------------------------

    async def suggestions(self, pair: Pair, count: int = 3) -> list[Slot]:
        """Times both are free in the coming week, from their matching availability."""
        mentor = next((m.identity for m in pair.members if m.role == "mentor"), None)
        mentee = next((m.identity for m in pair.members if m.role == "mentee"), None)
        found = await self.profiles.of([i for i in (mentor, mentee) if i])
        if mentor not in found or mentee not in found:
            return []
        today = datetime.fromtimestamp(self._now(), UTC).date()
        monday = today + timedelta(days=7 - today.weekday())
        return suggest_slots(found[mentee], found[mentor], Calendar(monday), count)

    async def propose(
        self,
        pair: Pair,
        identity: str,
        *,
        title: str,
        options: Sequence[datetime],
        minutes: int,
        timezone: str | None,
        every_weeks: int | None = None,
        until: date | None = None,
    ) -> Meeting:
        await self._require_open(pair, identity)
        require_plain(title, "title")
        if not 1 <= len(options) <= MAX_OPTIONS:
            raise InvalidInput(f"propose 1 to {MAX_OPTIONS} times")
        zone = timezone or (await self.profiles.zones([identity], "UTC"))[identity]
        try:
            check_timezone(zone)
        except ValueError as exc:
            raise InvalidInput(str(exc), code="unknown_timezone") from None
        starts = sorted({_utc(o).timestamp() for o in options})
        if starts[0] <= self._now():
            raise InvalidInput("every proposed time must be in the future", code="time_past")
        self._require_near(starts[-1])
        if (every_weeks is None) != (until is None):
            raise InvalidInput("a series needs both every_weeks and until")
        if until is not None:
            first = datetime.fromtimestamp(starts[0], UTC).date()
            if not first <= until <= first + timedelta(days=MAX_SERIES_DAYS):
                raise InvalidInput(f"until is within {MAX_SERIES_DAYS} days of the first time")
        return await self.store.propose(
            pair.id, title, identity, starts, minutes, zone, every_weeks, until
        )

    async def accept(self, meeting: Meeting, pair: Pair, identity: str, option: int) -> Meeting:
        """The other member takes one of the proposed times: the meeting is booked."""
        await self._require_open(pair, identity)
        if meeting.status != PROPOSED:
            raise Conflict(f"the meeting is {meeting.status}, not proposed", code="not_proposed")
        if identity == meeting.proposed_by:
            raise Forbidden("the other member accepts a proposal", code="own_proposal")
        if not 0 <= option < len(meeting.options):
            raise InvalidInput(f"option is 0 to {len(meeting.options) - 1}")
        start = meeting.options[option]
        if start <= self._now():
            raise InvalidInput("that time has passed; propose another", code="time_past")
        booked = await self.store.change(meeting, status=BOOKED, start_utc=start)
        await self._announce(booked, pair, "REQUEST")
        return booked

    async def reschedule(
        self, meeting: Meeting, pair: Pair, identity: str, start: datetime
    ) -> Meeting:
        """Move a booked meeting (a series moves as a whole): SEQUENCE goes up, invites
        and reminders are sent again for the new time, the old ones are dropped."""
        await self._require_open(pair, identity)
        if meeting.status != BOOKED:
            raise Conflict(f"the meeting is {meeting.status}, not booked", code="not_booked")
        at = _utc(start).timestamp()
        if at <= self._now():
            raise InvalidInput("the new time must be in the future", code="time_past")
        self._require_near(at)
        if meeting.until is not None and datetime.fromtimestamp(at, UTC).date() > meeting.until:
            raise InvalidInput("the new time is after the series' last date")
        moved = await self.store.change(
            meeting, start_utc=at, options=f"[{at}]", sequence=meeting.sequence + 1
        )
        await self.jobs.store.cancel(_key_prefix(meeting))
        await self._announce(moved, pair, "REQUEST")
        return moved

    async def cancel(self, meeting: Meeting, pair: Pair, identity: str | None) -> Meeting:
        """Cancel (a member; None: the pair ended). A booked meeting's invitees get a
        CANCEL; its reminders go."""
        if identity is not None:
            self._require_member(pair, identity)
        if meeting.status == CANCELLED:
            return meeting
        cancelled = await self.store.change(
            meeting, status=CANCELLED, sequence=meeting.sequence + 1
        )
        await self.jobs.store.cancel(_key_prefix(meeting))
        if meeting.status == BOOKED:
            await self._announce(cancelled, pair, "CANCEL", reminders=False)
        return cancelled

    async def pair_ended(self, pair: Pair) -> None:
        """The pair was ended (unpublished): its meetings to come are cancelled."""
        now = self._now()
        for meeting in await self.store.of_pair(pair.id):
            if meeting.status == PROPOSED or (
                meeting.status == BOOKED and meeting.next_end_after(now) is not None
            ):
                await self.cancel(meeting, pair, None)

    def _require_near(self, at: float) -> None:
        if at > self._now() + MAX_AHEAD_DAYS * 86400:
            raise InvalidInput(f"a meeting is at most {MAX_AHEAD_DAYS} days ahead", code="time_far")

    async def _require_open(self, pair: Pair, identity: str) -> None:
        self._require_member(pair, identity)
        await self.pairs.require_open_room(pair.room)

    @staticmethod
    def _require_member(pair: Pair, identity: str) -> None:
        if not pair.has_member(identity):
            raise Forbidden("only the pair's members book its meetings", code="not_a_member")

    # -- what a change sends -------------------------------------------------------------

    async def _announce(
        self, meeting: Meeting, pair: Pair, method: str, *, reminders: bool = True
    ) -> None:
        now = self._now()
        for member in pair.members:
            payload = {
                "meeting": meeting.id,
                "sequence": meeting.sequence,
                "identity": member.identity,
                "method": method,
            }
            key = f"{_key_prefix(meeting)}{meeting.sequence}:{method}:{_short(member.identity)}"
            await self.jobs.schedule(INVITE, payload, now, key=key)
        if not reminders:
            return
        for start in meeting.occurrences():
            at = start.timestamp()
            plan = [(f"before{m}", m, at - m * 60) for m in self.reminders.before_minutes]
            plan.append(
                ("absent", self.reminders.absent_minutes, at + 60 * self.reminders.absent_minutes)
            )
            for kind, minutes, run_at in plan:
                if run_at <= now:
                    continue  # booked later than a reminder would have gone: none
                for member in pair.members:
                    payload = {
                        "meeting": meeting.id,
                        "sequence": meeting.sequence,
                        "identity": member.identity,
                        "start": at,
                        "kind": kind,
                        "minutes": minutes,
                    }
                    key = (
                        f"{_key_prefix(meeting)}{meeting.sequence}:{int(at)}:{kind}:"
                        f"{_short(member.identity)}"
                    )
                    await self.jobs.schedule(REMINDER, payload, run_at, key=key)

    async def _current(self, job: Job) -> tuple[Meeting, Pair] | None:
        """The meeting and pair a job is about, if the job still applies."""
        meeting = await self.store.get(job.payload["meeting"])
        if meeting.sequence != job.payload["sequence"]:
            return None  # moved or cancelled since: a newer job (if any) speaks for it
        pair = await self.pairs.get(meeting.pair_id)
        if not pair.has_member(job.payload["identity"]):
            return None
        return meeting, pair

    async def _send_invite(self, job: Job) -> None:
        current = await self._current(job)
        if current is None:
            return
        meeting, pair = current
        method = job.payload["method"]
        if method == "REQUEST" and (meeting.status != BOOKED or pair.status != PairStatus.ACTIVE):
            return
        identity = job.payload["identity"]
        to = await self._address(identity)
        if to is None:
            return
        zones = await self.profiles.zones([identity], meeting.timezone)
        start = datetime.fromtimestamp(meeting.start_utc or 0, UTC)
        title = plain(meeting.title)
        if method == "CANCEL":
            subject, what = f"Cancelled: {title}", "was cancelled"
        elif meeting.sequence > 0:
            subject, what = f"Moved: {title}", "has moved"
        else:
            subject, what = f"Invitation: {title}", "is booked"
        repeat = (
            f", every {meeting.every_weeks} week(s) until {meeting.until.isoformat()}"
            if meeting.every_weeks and meeting.until
            else ""
        )
        text = (
            f"{title} {what}.\n\n"
            f"When: {local_text(start, zones[identity])}, {meeting.minutes} minutes{repeat}\n"
            f"With: {', '.join(plain(m.name) for m in pair.members if m.identity != identity)}\n"
            f"Join: {self.join_url}\n"
        )
        message = self.mailer.message(to, subject, text)
        attendees = [
            (m.name, email)
            for m in pair.members
            if (email := await self._address(m.identity)) is not None
        ]
        event = calendar.event_of(
            meeting,
            domain=self.domain,
            join_url=self.join_url,
            organizer=bare_address(self.mailer.sender),
            attendees=attendees,
            cancelled=method == "CANCEL",
        )
        _attach_calendar(message, calendar.invite(event, method), method)
        await self._send(message)

    async def _send_reminder(self, job: Job) -> None:
        current = await self._current(job)
        if current is None:
            return
        meeting, pair = current
        if meeting.status != BOOKED or pair.status != PairStatus.ACTIVE:
            return  # cancelled, or the pair ended: no reminders
        start = datetime.fromtimestamp(job.payload["start"], UTC)
        if start not in meeting.occurrences():
            return
        identity = job.payload["identity"]
        others = [m for m in pair.members if m.identity != identity]
        title = plain(meeting.title)
        if job.payload["kind"] == "absent":
            present = await self.presence(pair.room)
            waiting = [m for m in others if m.identity in present]
            if identity in present or not waiting:
                return
            subject = f"{plain(waiting[0].name)} is waiting for you: {title}"
            short = f"{plain(waiting[0].name)} is in the room. Join now."
            text = (
                f"{', '.join(plain(m.name) for m in waiting)} started {title} "
                f"{job.payload['minutes']} minutes ago and is in the room.\n\n"
                f"Join: {self.join_url}\n"
            )
            member = next(m for m in pair.members if m.identity == identity)
            phone = await self.dial_in(pair.room, member) if self.dial_in else None
            if phone:
                text += f"Or call {phone['number']} and enter PIN {phone['pin']}.\n"
        else:
            if self._now() >= start.timestamp():
                return  # late (the server was down): the meeting has begun, the reminder is moot
            minutes = int(job.payload["minutes"])
            when = f"in {minutes // 60} hours" if minutes >= 120 else f"in {minutes} minutes"
            subject = f"Reminder: {title} {when}"
            zones = await self.profiles.zones([identity], meeting.timezone)
            short = f"Starts {when}: {local_text(start, zones[identity])}"
            text = (
                f"{title} starts {when}: {local_text(start, zones[identity])}, "
                f"{meeting.minutes} minutes.\n"
                f"With: {', '.join(plain(m.name) for m in others)}\n"
                f"Join: {self.join_url}\n"
            )
        wants = await self.push.wants(identity, "reminders") if self.push else Channels(push=False)
        if wants.push and self.push is not None:
            # Queued first and once per job: a retry after a mail failure pushes nothing twice.
            notice = Notice(subject, short, self.join_url, ttl_seconds=15 * 60)
            await self.push.notify(identity, notice, key=f"{REMINDER}:{job.id}")
        to = await self._address(identity) if wants.email else None
        if to is not None:
            await self._send(self.mailer.message(to, subject, text))

    async def _address(self, identity: str) -> str | None:
        email = await self.directory.email_of(identity)
        if email is None or has_control(email) or "@" not in email:
            return None
        return email

    async def _send(self, message: EmailMessage) -> None:
        try:
            await self.mailer.send(message)  # MailFailed: the job is retried with backoff
        except MailOff:
            log.info("mail is off; not sent", extra={"subject": message["Subject"]})

    # -- reading -------------------------------------------------------------------------

    async def zones(self, pair: Pair, meeting: Meeting) -> dict[str, str]:
        return await self.profiles.zones([m.identity for m in pair.members], meeting.timezone)


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise InvalidInput("a time needs its UTC offset (e.g. 2025-03-04T14:00:00Z)")
    try:
        return instant.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-12:00 is past the last date Python holds
        raise InvalidInput(f"{instant.isoformat()} is too far ahead", code="time_far") from None


def _key_prefix(meeting: Meeting) -> str:
    return f"meeting:{meeting.id}:"


def _short(identity: str) -> str:
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def bare_address(address: str) -> str:
    """`a@b` of `Name <a@b>`."""
    return address.rsplit("<", 1)[-1].rstrip(">").strip()


def _attach_calendar(message: EmailMessage, ics: bytes, method: str) -> None:
    message.add_alternative(ics.decode(), subtype="calendar", params={"method": method})
