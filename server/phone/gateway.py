"""The phone gateway: SIP calls in, callers into rooms.

A call is answered first (so the caller can key DTMF), then admitted by PIN: from
the Request-URI user or an `X-Room-Pin` header when a cooperating PBX sends one,
otherwise from a spoken (or tone) prompt (digits then `#`, three tries, then goodbye
and BYE). An admitted caller joins the room in `phone` mode; a participant who is
already in the room from a browser and dials their personal PIN stays the same
participant and switches to `phone` mode until they hang up.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable

import numpy as np
from prometheus_client import CollectorRegistry

from server.errors import Conflict, Forbidden, NotFound, RateLimited
from server.phone import prompt
from server.phone.bridge import PhoneTrack, RoomAudio
from server.phone.call import Call, CallerInRoom, CallState
from server.phone.dialout import (
    DialOutCancelled,
    DialOutFailed,
    Ringing,
    check_number,
    place_call,
)
from server.phone.events import PhoneCallEnded, PhonePinRejected
from server.phone.g711 import Samples
from server.phone.guessing import PinCheckRefused, PinGuard
from server.phone.metrics import PhoneMetrics
from server.phone.pins import PinDirectory, PinMatch
from server.phone.refusals import PinRefusals, Refusal
from server.phone.register import TrunkRegistration
from server.phone.settings import PhoneSettings
from server.phone.sip import uri_user
from server.phone.stream import HANDSHAKE_SECONDS, SipStreamConnection, tls_context
from server.phone.trunk import Trunk, TrunkLink
from server.phone.uas import UserAgentServer
from server.rooms.events import EventBus, MediaControlsChanged
from server.rooms.model import MediaMode
from server.rooms.registry import RoomRegistry
from server.signaling.ratelimit import Buckets

log = logging.getLogger("pairwise.phone")

# Why a call ended → the reason the room's ParticipantLeft gives.
LEFT_REASONS = {"caller_hung_up": "left", "replaced": "replaced", "removed": "removed"}


class PhoneGateway:
    def __init__(
        self,
        settings: PhoneSettings,
        registry: RoomRegistry,
        bus: EventBus,
        pins: PinDirectory,
        room_audio: RoomAudio,
        metrics_registry: CollectorRegistry,
        require_open_room: Callable[[str], Awaitable[None]] | None = None,
        announce_mute: Callable[[str, str, bool], Awaitable[None]] | None = None,
    ) -> None:
        """`require_open_room(room)` raises `Forbidden` for a room that takes no one in
        any more (its pair was ended or rematched: `PairStore.require_open_room`)."""
        self.settings = settings
        self._require_open_room = require_open_room
        # Shows a caller's *6 to the room as a browser's mute is shown (phone/api.py wires
        # it to the SFU and Socket.IO); without it, the bus hears MediaControlsChanged.
        self._announce_mute = announce_mute
        self._registry = registry
        self._bus = bus
        self._pins = pins
        self._room_audio = room_audio
        self.metrics = PhoneMetrics(metrics_registry)
        self.guard = PinGuard(
            settings.pin_failures_per_source,
            settings.pin_failure_window_seconds,
            settings.pin_failures_per_minute,
        )
        self.refusals = PinRefusals()  # what the console shows of refused PINs
        self.uas = UserAgentServer(settings, self, self.metrics, self.guard, self.refusals)
        self._pin_timers: dict[str, asyncio.TimerHandle] = {}
        self._checking: set[str] = set()
        self._stream_servers: dict[str, asyncio.Server] = {}  # TCP | TLS → its listener
        self.trunk = (
            Trunk(
                settings.trunk_uri,
                settings.trunk_username,
                settings.trunk_password,
                settings.trunk_transport,
                settings.trunk_tls_ca,
                settings.trunk_srtp,
                (settings.tls_cert, settings.tls_key)
                if settings.tls_cert and settings.tls_key
                else None,
            )
            if settings.trunk_uri
            else None
        )
        self.trunk_link = TrunkLink(self.uas, self.trunk) if self.trunk is not None else None
        # (room, identity) → that member's "call me" while it rings (cancel it by its event)
        self._ringing: dict[tuple[str, str], Ringing] = {}
        self.registration = (
            TrunkRegistration(
                self.uas,
                self.trunk_link,
                self.metrics,
                settings.register_expires,
                settings.register_retry_seconds,
                settings.register_retry_max_seconds,
            )
            if self.trunk_link is not None and settings.trunk_register
            else None
        )
        self._dialouts = Buckets(settings.dialout_per_hour / 60, burst=settings.dialout_per_hour)

    @property
    def calls(self) -> dict[str, Call]:
        return self.uas.calls

    @property
    def ended_calls(self) -> list[Call]:
        """The most recent finished calls, oldest first (stats stay readable)."""
        return list(self.uas.ended_calls)

    @property
    def port(self) -> int:
        return self.uas.local_port

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(
            lambda: self.uas, local_addr=(self.settings.host, self.settings.port)
        )
        log.info("phone gateway listening", extra={"host": self.settings.host, "port": self.port})
        settings = self.settings
        if settings.tcp_bind:
            await self._listen("TCP", settings.tcp_bind, None)
        if settings.tls_bind:
            if not (settings.tls_cert and settings.tls_key):
                raise ValueError("SIP over TLS needs PAIRWISE_SIP_TLS_CERT and _KEY")
            await self._listen(
                "TLS",
                settings.tls_bind,
                tls_context(settings.tls_cert, settings.tls_key, settings.tls_client_ca),
            )
        if settings.trunk_register and self.trunk is None:
            raise ValueError("PAIRWISE_SIP_TRUNK_REGISTER needs PAIRWISE_SIP_TRUNK_URI")
        if self.registration is not None:
            self.registration.start()

    async def _listen(self, name: str, bind: str, context: ssl.SSLContext | None) -> None:
        host, port = PhoneSettings.parse_bind(bind)
        idle = self.settings.stream_idle_seconds
        self._stream_servers[name] = await asyncio.get_running_loop().create_server(
            lambda: SipStreamConnection(self.uas, name, idle),
            host,
            port,
            ssl=context,
            ssl_handshake_timeout=HANDSHAKE_SECONDS if context is not None else None,
        )
        self.uas.listening[name] = self.stream_port(name)
        log.info(
            "phone gateway listening", extra={"transport": name, "port": self.stream_port(name)}
        )

    def stream_port(self, name: str) -> int:
        """The port SIP over `name` (TCP | TLS) listens on."""
        return int(self._stream_servers[name].sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.registration is not None:
            await self.registration.stop()  # while the socket is still open
        for ringing in self._ringing.values():
            ringing.cancelled.set()
        for server in self._stream_servers.values():
            server.close()
        await self.uas.close()
        if self.trunk_link is not None:
            self.trunk_link.close()
        for timer in self._pin_timers.values():
            timer.cancel()
        self._pin_timers.clear()

    async def hang_up(self, call_id: str, reason: str = "removed") -> bool:
        """End a call from the room's side (a moderator removed the caller, say)."""
        call = self.calls.get(call_id)
        if call is None:
            return False
        await self.uas.hang_up(call, reason)
        return True

    async def remove(self, room: str, identity: str) -> bool:
        """An operator removed `identity` from `room`: end their calls into it (BYE), and
        give the room a new PIN, since the removed person may know the old one (they
        could have read it in the room, or called in with it). Whether a call was ended,
        or a "call me" still ringing them cancelled (the trunk gets a CANCEL)."""
        await self._pins.rotate_room_pin(room)
        cancelled = self.cancel_call_me(room, identity)
        found = [
            c
            for c in list(self.calls.values())
            if c.room is not None and (c.room.match.room, c.room.identity) == (room, identity)
        ]
        for call in found:
            call.end_reason = "removed"
            await self.uas.hang_up(call, "removed")
        return bool(found) or cancelled

    # -- dial-out ("call me") ----------------------------------------------------------------

    async def call_me(self, room: str, identity: str, name: str, role: str, number: str) -> str:
        """A member asked to be called: check, then ring them through the trunk (in the
        background); the masked number. The answered call joins `room` as them."""
        if self.trunk is None:
            raise NotFound("calling out is not set up on this server", code="dialout_disabled")
        dialled = check_number(number, self.settings.dialout_prefixes)
        if not await self._room_open(room):
            raise Forbidden("this room is closed", code="room_closed")
        if not self._dialouts.get(f"{room}\n{identity}").take():
            raise RateLimited("too many calls asked for; try again later")
        self.cancel_call_me(room, identity)  # asked again (a typo fixed?): the new number wins
        ringing = Ringing(room, identity, name, "…" + dialled[-3:], time.time())
        self._ringing[room, identity] = ringing
        self.uas.spawn(
            self._call_out(room, identity, name, role, dialled, ringing.cancelled), "phone-dial-out"
        )
        return ringing.number

    def cancel_call_me(self, room: str, identity: str) -> bool:
        """Stop ringing `identity`'s phone (they, or an operator, changed their mind):
        the trunk gets a CANCEL. Whether a call was ringing."""
        ringing = self._ringing.get((room, identity))
        if ringing is None:
            return False
        ringing.cancelled.set()
        return True

    def ringing(self, room: str, identity: str) -> bool:
        """Whether a "call me" for `identity` in `room` is still ringing."""
        return (room, identity) in self._ringing

    @property
    def ringing_calls(self) -> list[Ringing]:
        """The "call me"s not answered yet (the operators' console lists them)."""
        return list(self._ringing.values())

    async def _call_out(
        self, room: str, identity: str, name: str, role: str, number: str, cancelled: asyncio.Event
    ) -> None:
        assert self.trunk_link is not None
        try:
            call = await place_call(self.uas, self.trunk_link, number, cancelled)
        except DialOutCancelled:
            self.metrics.call_attempts.labels("dial_out_cancelled").inc()
            log.info("dial-out cancelled", extra={"room": room})
            return
        except (DialOutFailed, OSError) as exc:
            self.metrics.call_attempts.labels("dial_out_failed").inc()
            log.warning("dial-out failed", extra={"room": room, "reason": str(exc)[:80]})
            return
        finally:
            ringing = self._ringing.get((room, identity))
            if ringing is not None and ringing.cancelled is cancelled:
                del self._ringing[room, identity]
        call.on_digits = self._keyed
        call.on_prompt_finished = self._prompt_finished
        call.on_media_timeout = lambda c: self._hang_up(c, "media_timeout")
        self.uas.add_call(call)
        if not await self._room_open(room):  # closed while it rang
            call.end_reason = "room_closed"
            call.play(self._prompt(prompt.ROOM_CLOSED), then_hang_up=True)
            return
        self._admit(call, PinMatch(room, identity, name, role))

    # -- CallHandler -----------------------------------------------------------------------

    async def call_confirmed(self, call: Call) -> None:
        call.pin_entry.tries = self.settings.pin_tries
        call.on_digits = self._keyed
        call.on_prompt_finished = self._prompt_finished
        call.on_media_timeout = lambda c: self._hang_up(c, "media_timeout")
        header = call.invite.get("X-Room-Pin")
        dialled = uri_user(call.invite.uri)
        if header:
            call.pin_entry.count_attempt()
            await self._check_pin(call, header, "header")
        elif dialled.isdigit() and len(dialled) == self.settings.pin_digits:
            # A Request-URI user of a PIN's length is a guess like any other; anything
            # else there is the dialled number (what real trunks send): ask for the PIN.
            call.pin_entry.count_attempt()
            await self._check_pin(call, dialled, "request_uri")
        else:
            call.play(self._prompt(prompt.ASK_PIN), loop=True)
            self._arm_pin_timer(call)
        early, call.early_keys = call.early_keys, ""
        if early and call.call_id in self.calls:
            self._keyed(call, early)

    async def call_ended(self, call: Call) -> None:
        self._disarm_pin_timer(call)
        joined = call.room
        if joined is None:
            return
        room, identity = joined.match.room, joined.identity
        self._room_audio.unpublish_track(room, identity)
        self._release_audio(call)
        if call.muted and not joined.joined_by_us and self._registry.participant(room, identity):
            await self.set_muted(call, False)  # back in the browser: not left muted by *6
        if joined.joined_by_us:
            self._registry.leave(
                room,
                identity,
                connection=call.call_id,
                reason=LEFT_REASONS.get(call.end_reason, "disconnected"),
            )
        elif joined.previous_mode is not None and self._registry.participant(room, identity):
            self._registry.set_media_mode(
                room, identity, joined.previous_mode, reason="phone_hung_up"
            )
        started = call.confirmed_at or call.started
        self._bus.publish(
            PhoneCallEnded(
                room,
                identity=identity,
                call_id=call.call_id,
                reason=call.end_reason,
                duration_seconds=round(time.monotonic() - started, 3),
                packets_received=call.stats.packets_received,
                packets_lost=call.stats.packets_lost,
            )
        )

    # -- PIN entry -------------------------------------------------------------------------

    def _keyed(self, call: Call, digits: str) -> None:
        if call.room is not None:
            self._in_room_keys(call, digits)
            return
        if call.call_id in self._checking or call.pin_entry.exhausted:
            return  # admitted, a PIN being checked, or out of tries: keys change nothing
        self._arm_pin_timer(call)
        for digit in digits:
            pin = call.pin_entry.key(digit)
            if pin is not None:
                self._checking.add(call.call_id)
                self.uas.spawn(self._check_pin(call, pin, "dtmf"), "phone-check-pin")
                return

    def _in_room_keys(self, call: Call, digits: str) -> None:
        """Keys in the room: `*6` mutes or unmutes the caller."""
        for digit in digits:
            if (call.last_key, digit) == ("*", "6"):
                self.uas.spawn(self.set_muted(call, not call.muted), "phone-mute")
                digit = ""
            call.last_key = digit

    async def set_muted(self, call: Call, muted: bool) -> None:
        """Mute or unmute a caller in their room; they hear which, the room sees it."""
        if call.room is None or call.muted == muted:
            return
        call.muted = muted
        if call.state != CallState.ENDED:
            call.play(self._prompt(prompt.MUTED if muted else prompt.UNMUTED))
        room, identity = call.room.match.room, call.room.identity
        if self._announce_mute is not None:
            await self._announce_mute(room, identity, muted)
        else:
            self._bus.publish(
                MediaControlsChanged(room, identity=identity, audio=not muted, video=False)
            )
        log.info("phone caller muted" if muted else "phone caller unmuted",
                 extra={"room": room, "call_id": call.call_id[:80]})  # fmt: skip

    async def _check_pin(self, call: Call, pin: str, via: str) -> None:
        """Check one attempt (`via` dtmf, request_uri or header): admit, or count a failure."""
        self._checking.add(call.call_id)
        try:
            try:
                hold = self.guard.hold(call.source)
            except PinCheckRefused as refused:
                # Out of failures for this address, or over the global ceiling from an
                # address never let in (guessing.py): the attempt is not checked at all.
                self.metrics.pin_checks_refused.labels(refused.reason).inc()
                call.pin_entry.exhaust()
                self._rejected(call, refused.reason, via)
                return
            match = await self._pins.resolve(pin) if pin.isdigit() else None
            closed = match is not None and not await self._room_open(match.room)
        finally:
            self._checking.discard(call.call_id)
        if match is not None:
            self.guard.give_back(hold, proven=not (match.removed or closed))
        if call.call_id not in self.calls:
            return
        if match is not None and match.removed:
            # A known PIN, not a guess: the person was removed from the room.
            call.pin_entry.exhaust()
            self._rejected(call, "removed", via, room=match.room)
            return
        if match is not None and closed:
            # A known PIN of a room that closed (its pair ended): said so, then goodbye.
            call.pin_entry.exhaust()
            self._rejected(call, "room_closed", via, room=match.room)
            return
        if match is not None:
            self._admit(call, match)
            return
        self.metrics.pin_failures.labels(via).inc()  # its failure was taken by the hold
        if self.guard.refuses(call.source):
            self.metrics.pin_sources_locked.inc()
            call.pin_entry.exhaust()
        self._rejected(call, "wrong_pin", via)

    async def _room_open(self, room: str) -> bool:
        if self._require_open_room is None:
            return True
        try:
            await self._require_open_room(room)
        except Forbidden:
            return False
        return True

    def _rejected(self, call: Call, reason: str, via: str, room: str = "") -> None:
        final = call.pin_entry.exhausted
        event = PhonePinRejected(
            room,
            call_id=call.call_id,
            caller=call.caller,
            source=call.source,
            via=via,
            reason=reason,
            attempt=call.pin_entry.attempts,
            final=final,
        )
        self._bus.publish(event)
        self.refusals.record(Refusal(event.ts, call.source, reason, via, room))
        log.warning(
            "phone PIN rejected",
            extra={
                "call_id": call.call_id[:80],
                "source": call.source,
                "caller": call.caller,
                "via": via,
                "reason": reason,
                "attempt": call.pin_entry.attempts,
                "room": room,
            },
        )
        if final:
            self._disarm_pin_timer(call)
            self.metrics.call_attempts.labels("pin_rejected").inc()
            call.end_reason = call.end_reason or "pin_rejected"
            goodbye = prompt.ROOM_CLOSED if reason == "room_closed" else prompt.GOODBYE
            call.play(self._prompt(goodbye), then_hang_up=True)
        else:
            call.play(self._prompt(prompt.WRONG_PIN))
            self._arm_pin_timer(call)

    def _prompt(self, which: prompt.Prompt) -> Samples:
        return prompt.render(which, voice=self.settings.voice_prompts)

    def _prompt_finished(self, call: Call) -> None:
        if call.hang_up_after_prompt:
            self._hang_up(call, call.end_reason or "pin_rejected")
        elif call.room is None:
            call.play(self._prompt(prompt.ASK_PIN), loop=True)

    def _arm_pin_timer(self, call: Call) -> None:
        self._disarm_pin_timer(call)
        self._pin_timers[call.call_id] = asyncio.get_running_loop().call_later(
            self.settings.pin_timeout_seconds, self._pin_timed_out, call
        )

    def _disarm_pin_timer(self, call: Call) -> None:
        timer = self._pin_timers.pop(call.call_id, None)
        if timer is not None:
            timer.cancel()

    def _pin_timed_out(self, call: Call) -> None:
        self._pin_timers.pop(call.call_id, None)
        if call.room is None and call.call_id in self.calls:
            call.pin_entry.timed_out()
            self._rejected(call, "no_pin", "dtmf")

    # -- the room --------------------------------------------------------------------------

    def _admit(self, call: Call, match: PinMatch) -> None:
        self._disarm_pin_timer(call)
        if match.identity is not None:
            identity, name = match.identity, match.name or match.identity
            role = match.role or self.settings.room_pin_role
        else:
            identity = "phone-" + hashlib.sha256(call.call_id.encode()).hexdigest()[:10]
            name, role = call.name, self.settings.room_pin_role
        present = self._registry.participant(match.room, identity)
        if present is not None and present.connection not in self.calls:
            # The same person, already here from a browser: now they speak by phone.
            previous = present.media_mode
            self._registry.set_media_mode(match.room, identity, MediaMode.PHONE, reason="dialed_in")
            call.room = CallerInRoom(
                match, identity, name, role, joined_by_us=False, previous_mode=previous
            )
        else:
            try:
                result = self._registry.join(
                    match.room,
                    identity,
                    name,
                    role,
                    connection=call.call_id,
                    media_mode=MediaMode.PHONE,
                )
            except Conflict as exc:
                log.info(
                    "phone caller not admitted", extra={"room": match.room, "reason": exc.message}
                )
                call.end_reason = "room_full"
                call.play(self._prompt(prompt.GOODBYE), then_hang_up=True)
                return
            call.room = CallerInRoom(match, identity, name, role, joined_by_us=True)
            replaced = self.calls.get(result.replaced_connection or "")
            if replaced is not None:
                # The same person called again: the new call owns the room entry now.
                self._release_audio(replaced)
                replaced.room = None
                self._hang_up(replaced, "replaced")
        call.phone_track = PhoneTrack()
        self._room_audio.publish_track(match.room, identity, call.phone_track)
        call.mix = self._room_audio.room_mix(match.room, identity)
        room = self._registry.get(match.room)
        others = sum(
            1
            for p in (room.participants.values() if room else ())
            if p.identity != identity and p.role != "observer"
        )
        # "You are joining", then who is here: a spoken count, or one beep per person.
        call.play(
            np.concatenate(
                [self._prompt(prompt.ACCEPTED), self._prompt(prompt.who_is_here(others))]
            )
        )
        log.info(
            "phone caller joined",
            extra={"room": match.room, "identity": identity, "call_id": call.call_id[:80]},
        )

    @staticmethod
    def _release_audio(call: Call) -> None:
        if call.mix is not None:
            call.mix.close()
            call.mix = None
        if call.phone_track is not None:
            call.phone_track.stop()
            call.phone_track = None

    def _hang_up(self, call: Call, reason: str) -> None:
        self.uas.spawn(self.uas.hang_up(call, reason), f"phone-hang-up-{reason}")
