"""The unread-chat digest: a member whose pair's chat has waited unread for
`after_minutes` gets one email with it, every pair's unread chat in one message, at most
once per `every_minutes`, with a signed link to stop them.

A scan runs as a durable job once a minute (the job's key is the minute, so several nodes
schedule it once); after each email the member's marks move past what it carried, so a
retried scan sends nothing twice. Chat a member has read (their read marker) or already
got in a digest is never sent again. Only active pairs' chat goes out.

A member who chose web push for messages (server/push) gets, at the same moment, a
notification naming who wrote ("New message from Ada"), never what; one who turned email
off (on /me, or with the unsubscribe link) gets no email.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from server.errors import NotFound
from server.jobs.runner import JobRunner
from server.jobs.store import Job
from server.mail import Mailer, MailOff
from server.meetings.directory import Directory
from server.meetings.text import has_control, plain
from server.pairs.model import Pair, PairStatus
from server.pairs.store import PairStore
from server.push.service import Notice, Push
from server.push.store import Channels
from server.rooms.chat import unread_messages
from server.store import Database
from server.store.schema import chat_digest_marks, chat_digest_people, chat_messages

log = logging.getLogger("pairwise.digest")

KIND = "chat.digest"
SCAN_SECONDS = 60
MAX_PER_ROOM = 20
EXCERPT = 300


class ChatDigest:
    def __init__(
        self,
        database: Database,
        pairs: PairStore,
        jobs: JobRunner,
        mailer: Mailer,
        directory: Directory,
        *,
        secret_key: str,
        base_url: str,
        after_minutes: float,
        every_minutes: float,
        reply_address: Callable[[str, str], str] | None = None,
        push: Push | None = None,
    ) -> None:
        self._db = database
        self.pairs = pairs
        self.jobs = jobs
        self.mailer = mailer
        self.directory = directory
        self._key = hashlib.sha256(b"pairwise chat digest unsubscribe\0" + secret_key.encode())
        self.base_url = base_url.rstrip("/")
        self.after = after_minutes * 60
        self.every = every_minutes * 60
        # (pair id, identity) -> the address a reply posts from (server/mailin); None: off.
        self.reply_address = reply_address
        self.push = push
        jobs.handle(KIND, self._scan_job)

    async def start(self) -> None:
        """Schedule this minute's scan (once, whichever node asks first)."""
        await self._schedule(self.jobs.clock())

    async def _schedule(self, at: float) -> None:
        slot = int(at // SCAN_SECONDS)
        await self.jobs.schedule(KIND, {}, slot * SCAN_SECONDS, key=f"{KIND}:{slot}")

    async def _scan_job(self, job: Job) -> None:
        try:
            await self.scan()
        finally:
            await self._schedule(max(job.run_at, self.jobs.clock()) + SCAN_SECONDS)

    async def scan(self) -> int:
        """Send the digests due now; how many emails went out."""
        now = self.jobs.clock()
        rooms_of: dict[str, list[Pair]] = defaultdict(list)
        for pair in await self.pairs.list(PairStatus.ACTIVE):
            for member in pair.members:
                rooms_of[member.identity].append(pair)
        sent = 0
        for identity, pairs in rooms_of.items():
            if await self._send_to(identity, pairs, now):
                sent += 1
        return sent

    async def _send_to(self, identity: str, pairs: list[Pair], now: float) -> bool:
        async with self._db.connect() as conn:
            person = (
                (
                    await conn.execute(
                        select(chat_digest_people).where(chat_digest_people.c.identity == identity)
                    )
                )
                .mappings()
                .first()
            )
            if (
                person is not None
                and person["last_sent_at"] is not None
                and now - person["last_sent_at"] < self.every
            ):
                return False
            wants = (
                await self.push.wants(identity, "messages") if self.push else Channels(push=False)
            )
            by_email = wants.email and not (person is not None and person["unsubscribed"])
            if not by_email and not wants.push:
                return False
            unread: dict[str, list[tuple[int, str, str, float]]] = {}
            for pair in pairs:
                mark = func.coalesce(
                    select(func.max(chat_digest_marks.c.message_id))
                    .where(
                        chat_digest_marks.c.room == pair.room,
                        chat_digest_marks.c.identity == identity,
                    )
                    .scalar_subquery(),
                    0,
                )
                found = (
                    await conn.execute(
                        unread_messages(pair.room, identity)
                        .where(chat_messages.c.id > mark)
                        .order_by(chat_messages.c.id)
                        .limit(MAX_PER_ROOM)
                    )
                ).all()
                if found:
                    unread[pair.room] = [(r[0], r[1], r[2], r[3]) for r in found]
        if not any(rows[0][3] <= now - self.after for rows in unread.values()):
            return False  # nothing has waited long enough yet
        marks = {room: rows[-1][0] for room, rows in unread.items()}
        pushed = wants.push and await self._push(identity, unread, marks)
        to = await self.directory.email_of(identity) if by_email else None
        if to is None or has_control(to):
            if pushed:
                await self._sent(identity, marks, now)
            return False
        titles = {p.room: p.title for p in pairs}
        # Replies by email (server/mailin): the Reply-To answers one chat; with several,
        # each chat's own address is in the text.
        replies = {}
        if self.reply_address is not None:
            replies = {
                p.room: self.reply_address(p.id, identity) for p in pairs if p.room in unread
            }
        reply_to = next(iter(replies.values())) if len(replies) == 1 else None
        lines = []
        for room, rows in unread.items():
            lines.append(f"{plain(titles[room])}:")
            if room in replies and reply_to is None:
                lines.append(f"  (answer by email to {replies[room]})")
            for _, name, text, ts in rows:
                when = datetime.fromtimestamp(ts, UTC).strftime("%d %b %H:%M UTC")
                excerpt = plain(text)[:EXCERPT]
                lines.append(f"  {plain(name)} ({when}): {excerpt}")
            lines.append("")
        count = sum(len(rows) for rows in unread.values())
        unsubscribe = self.unsubscribe_url(identity)
        text = (
            f"You have {count} unread chat message(s) in Pairwise.\n\n"
            + "\n".join(lines)
            + ("\nReply to this email to answer in the chat.\n" if reply_to else "")
            + f"\nReply from your Pairwise page: {self.base_url}/me\n"
            f"\nNo more of these emails: {unsubscribe}\n"
        )
        message = self.mailer.message(to, f"Unread chat in Pairwise ({count})", text)
        message["List-Unsubscribe"] = f"<{unsubscribe}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
        if reply_to is not None:
            message["Reply-To"] = reply_to
        try:
            await self.mailer.send(message)  # MailFailed: the scan is retried
        except MailOff:
            log.info("mail is off; no chat digest sent")
            if pushed:
                await self._sent(identity, marks, now)
            return False
        await self._sent(identity, marks, now)
        return True

    async def _push(
        self,
        identity: str,
        unread: dict[str, list[tuple[int, str, str, float]]],
        marks: dict[str, int],
    ) -> bool:
        """Queue the new-message notification (who wrote, not what); once per set of marks,
        so a scan retried after a mail failure pushes nothing twice."""
        assert self.push is not None
        names = list(dict.fromkeys(plain(row[1]) for rows in unread.values() for row in rows))
        count = sum(len(rows) for rows in unread.values())
        body = f"New message{'s' if count > 1 else ''} from {' and '.join(names[:2])}"
        if len(names) > 2:
            body += f" and {len(names) - 2} more"
        key = f"{KIND}:{identity}:" + ",".join(f"{r}={m}" for r, m in sorted(marks.items()))
        notice = Notice("Pairwise", body, f"{self.base_url}/me")
        return await self.push.notify(identity, notice, key=key) > 0

    async def _sent(self, identity: str, marks: dict[str, int], now: float) -> None:
        async with self._db.begin() as conn:
            for room, message_id in marks.items():
                where = (chat_digest_marks.c.room == room) & (
                    chat_digest_marks.c.identity == identity
                )
                done = await conn.execute(
                    update(chat_digest_marks).where(where).values(message_id=message_id)
                )
                if done.rowcount == 0:
                    await conn.execute(
                        insert(chat_digest_marks).values(
                            room=room, identity=identity, message_id=message_id
                        )
                    )
            await self._person(conn, identity, last_sent_at=now)

    async def _person(self, conn: AsyncConnection, identity: str, **values: object) -> None:
        where = chat_digest_people.c.identity == identity
        done = await conn.execute(update(chat_digest_people).where(where).values(**values))
        if done.rowcount == 0:
            row = {"last_sent_at": None, "unsubscribed": False, **values}
            await conn.execute(insert(chat_digest_people).values(identity=identity, **row))

    # -- unsubscribing -------------------------------------------------------------------

    def _signature(self, identity: str) -> str:
        return hmac.new(self._key.digest(), identity.encode(), hashlib.sha256).hexdigest()[:32]

    def unsubscribe_token(self, identity: str) -> str:
        name = base64.urlsafe_b64encode(identity.encode()).decode().rstrip("=")
        return f"{name}.{self._signature(identity)}"

    def unsubscribe_url(self, identity: str) -> str:
        return f"{self.base_url}/digest/unsubscribe/{self.unsubscribe_token(identity)}"

    def identity_of(self, token: str) -> str:
        """The identity a token was signed for; NotFound for anything else."""
        name, _, signature = token.partition(".")
        try:
            identity = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            raise NotFound("no such link", code="no_link") from None
        if not hmac.compare_digest(signature, self._signature(identity)):
            raise NotFound("no such link", code="no_link")
        return identity

    async def unsubscribe(self, token: str) -> str:
        identity = self.identity_of(token)
        async with self._db.begin() as conn:
            await self._person(conn, identity, unsubscribed=True)
        return identity
