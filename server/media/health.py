"""The media health monitor: from real counters to the fallback ladder.

Every tick it judges each participant's connection from what the SFU saw:
- The connection is dead (aiortc says `failed` or `closed`: ICE or DTLS failed, the far
  end closed it, ICE consent expired) → it is closed, the participant moves to text
  for that reason and their client gets `media_failed` to rebuild it. The state change
  event does this at once; the tick is the safety net.
- ICE never completed within `media_ice_timeout_seconds` → the connection is closed
  and the participant moves to text (`ice_timeout`); ICE failed → text (`ice_failed`).
- No video frames for `media_silence_seconds` while the camera is on → audio
  (`no_video_rtp`), or text if the audio is silent too (`no_rtp`); in audio mode, no
  audio frames → text (`no_audio_rtp`). Silence alone does not close the connection:
  the same ICE path carries media again the moment the network does (UDP blocked for
  12 s came back to video 5.2 s after it returned, docs/benchmarks.md), while a new
  connection could only form after the fault cleared. If the silence outlasts ICE
  consent (~31 s), aiortc closes the connection and the first rule takes over.
  Consent loss is therefore noticed at `media_silence_seconds` (5 s) through this rule
  whenever the participant sends audio or video: the step down (`no_rtp`) reaches the
  web client as its `media_mode`, and the client rebuilds its connection itself when
  its own ICE says `disconnected` (+3 s) or, at the latest, 8 s after the step.
- A participant the silence rule does not cover (muted with the camera off, or muted in
  audio mode) sends no RTP, so nothing above would notice their connection die before
  consent expiry (~31 s). For them the evidence is `Liveness` (liveness.py): any packet
  on the transport (receiver reports for what they receive), and otherwise an ICE
  consent check the SFU sends after 1 s of quiet. Nothing heard for
  `media_liveness_seconds` → the connection is closed as dead (`consent_expired`: text,
  `media_failed`, the client rebuilds). Their way back up is a connection heard from
  (they send no frames to judge by), for `media_recover_seconds`.
- Inbound loss at or above `media_loss_step_down_percent` in `LOSSY_SAMPLES`
  consecutive samples, in video mode → audio (`high_loss`). One 2 s sample is noisy
  (10 % random loss has measured 20.5 % in one sample), and only the media streams
  count: the retransmission (RTX) stream's own sequence gaps are not media lost.
- After stepping someone down, media that flows cleanly again for
  `media_recover_seconds` brings them back up (`media_recovered`), never above the
  mode they had; a mode the client sets itself ends that.
- While someone is below video (stepped down, or by their own choice), the SFU stops
  forwarding their video (`Sfu.hold_video`, on the `media_mode` room event); the web
  client stops sending it. After a network step down (`NETWORK_REASONS`: loss,
  silence, a dead connection) clean audio is then the evidence that video would fit.

Every `SAMPLE_SECONDS` it reads each PeerConnection's stats (packets, bytes, loss,
RTT from RTCP), and every `QUALITY_EVENT_SECONDS` publishes a `MediaQualitySampled`
event (the session log writes each one to the database, so it is sparser than the
samples the loss rule and the stats API use).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from server.config import Settings
from server.media.forwarding import Publication
from server.media.metrics import MediaMetrics
from server.media.peer import Counters, Peer
from server.rooms.events import EventBus, MediaQualitySampled
from server.rooms.model import LADDER, MediaMode
from server.rooms.registry import RoomRegistry

if TYPE_CHECKING:
    from server.media.sfu import RoomMedia, Sfu

log = logging.getLogger("pairwise.media.health")

SAMPLE_SECONDS = 2.0
LOSSY_SAMPLES = 2  # consecutive samples over the threshold before loss steps down
QUALITY_EVENT_SECONDS = 10.0


@dataclass
class _State:
    ceiling: MediaMode | None = None  # the mode before the monitor stepped down
    last_set: MediaMode | None = None
    healthy_since: float | None = None
    network: bool = False  # stepped down for the network: clean audio vouches for video


# Steps the network caused: while stepped down for one of these the client sends no
# video, so clean audio is the evidence that video would fit again. A dead connection
# counts: the client rebuilds it and, until it is stepped back up, sends audio only.
NETWORK_REASONS = frozenset(
    {
        "high_loss",
        "no_rtp",
        "ice_failed",
        "ice_timeout",
        "dtls_failed",
        "connection_closed",
        "consent_expired",
        "renegotiation_timeout",
        "renegotiation_failed",
    }
)


def inbound_media_packets(stats: Iterable[Any], media_ssrcs: set[int]) -> tuple[int, int]:
    """(received, lost) over the inbound-rtp streams of `media_ssrcs`; every inbound
    stream if none is known. Retransmission streams have their own SSRC and are left
    out: their sequence gaps are lost retransmissions, not lost media."""
    received = lost = 0
    for entry in stats:
        if entry.type == "inbound-rtp" and (not media_ssrcs or entry.ssrc in media_ssrcs):
            received += entry.packetsReceived
            lost += max(0, entry.packetsLost)
    return received, lost


def _worse(a: MediaMode, b: MediaMode) -> MediaMode:
    return a if LADDER.index(a) >= LADDER.index(b) else b


class HealthMonitor:
    def __init__(
        self,
        sfu: Sfu,
        settings: Settings,
        registry: RoomRegistry,
        bus: EventBus,
        metrics: MediaMetrics,
    ) -> None:
        self._sfu = sfu
        self._settings = settings
        self._registry = registry
        self._bus = bus
        self._metrics = metrics
        self._states: dict[tuple[str, str], _State] = {}
        self._task: asyncio.Task[None] | None = None
        self.tick_seconds = min(0.5, settings.media_silence_seconds / 4)
        self._fresh_seconds = min(1.0, settings.media_silence_seconds / 2)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def connection_lost(self, room: str, identity: str, reason: str) -> None:
        """The participant's PeerConnection is gone: no media at all until a reconnect."""
        self._step(room, identity, MediaMode.TEXT, reason, down=True)

    async def _run(self) -> None:
        next_sample = time.monotonic() + SAMPLE_SECONDS
        while True:
            await asyncio.sleep(self.tick_seconds)
            try:
                now = time.monotonic()
                self.check(now)
                if now >= next_sample:
                    next_sample = now + SAMPLE_SECONDS
                    await self.sample(now)
            except Exception:
                log.exception("media health check failed")

    def check(self, now: float) -> None:
        for media in list(self._sfu.rooms.values()):
            for peer in list(media.peers.values()):
                self._judge(media, peer, now)
        live = {(r.name, who) for r in self._sfu.rooms.values() for who in r.peers}
        for key in list(self._states):
            if key not in live and self._registry.participant(*key) is None:
                del self._states[key]

    def _judge(self, media: RoomMedia, peer: Peer, now: float) -> None:
        participant = self._registry.participant(peer.room, peer.identity)
        if participant is None or peer.closed:
            return
        state = self._states.setdefault((peer.room, peer.identity), _State())
        if state.last_set is not None and participant.media_mode != state.last_set:
            state.ceiling = state.last_set = None  # the client chose its own mode
            state.network = False
        dead = peer.dead_reason()
        if dead is not None:  # missed its state change event: the same path as that event
            self._sfu._spawn(self._sfu.fail(peer, dead))
            return
        if peer.connected_at is None:
            if now - peer.created_at >= self._settings.media_ice_timeout_seconds:
                self._sfu._spawn(self._sfu.fail(peer, "ice_timeout"))
            return
        if peer.state != "connected":
            return
        controls = media.controls.get(peer.identity)
        audio = self._incoming(media, peer, "audio")
        video = self._incoming(media, peer, "video")
        sends_audio = controls is None or controls.audio
        sends_video = controls is None or controls.video
        mode = participant.media_mode
        quiet = peer.liveness.observe(now)
        # The mode to judge by: while stepped down, the one the participant had.
        wanted = state.ceiling or mode
        covered = (wanted == MediaMode.VIDEO and sends_video) or (
            wanted == MediaMode.AUDIO and sends_audio
        )  # by the silence rules below
        if not covered and quiet >= self._settings.media_liveness_seconds:
            self._sfu._spawn(self._sfu.fail(peer, "consent_expired"))
            return
        lossy = peer.quality.lossy_samples >= LOSSY_SAMPLES
        clean = peer.quality.loss_percent < self._settings.media_loss_step_down_percent
        down: tuple[MediaMode, str] | None = None
        if mode == MediaMode.VIDEO and sends_video and self._silent(video, peer, now):
            # The network stops audio and video together, but audio's last packet can come a
            # frame interval after video's: half the silence is enough to call it one loss.
            audio_dead = sends_audio and self._silent(audio, peer, now, share=0.5)
            down = (MediaMode.TEXT, "no_rtp") if audio_dead else (MediaMode.AUDIO, "no_video_rtp")
        elif mode == MediaMode.VIDEO and lossy:
            down = (MediaMode.AUDIO, "high_loss")
        elif mode == MediaMode.AUDIO and sends_audio and self._silent(audio, peer, now):
            down = (MediaMode.TEXT, "no_audio_rtp")
        if down is not None:
            self._step(peer.room, peer.identity, down[0], down[1], down=True)
            return
        if state.ceiling is None:
            return
        video_fits = self._fresh(video, now) or (
            state.network and video is not None and video.held and self._fresh(audio, now)
        )
        if not covered and clean:
            best = MediaMode.VIDEO  # heard from (or closed above): no frames to judge by
        elif video_fits and clean:
            best = MediaMode.VIDEO
        elif self._fresh(audio, now) or self._fresh(video, now):
            best = MediaMode.AUDIO
        else:
            best = MediaMode.TEXT
        best = _worse(best, state.ceiling)
        if mode not in LADDER or LADDER.index(best) >= LADDER.index(mode):
            state.healthy_since = None
        elif state.healthy_since is None:
            state.healthy_since = now
        elif now - state.healthy_since >= self._settings.media_recover_seconds:
            self._step(peer.room, peer.identity, best, "media_recovered", down=False)

    def _step(self, room: str, identity: str, mode: MediaMode, reason: str, down: bool) -> None:
        participant = self._registry.participant(room, identity)
        if participant is None or participant.media_mode not in LADDER:
            return
        state = self._states.setdefault((room, identity), _State())
        current = participant.media_mode
        if down and LADDER.index(mode) <= LADDER.index(current):
            return
        if down and state.ceiling is None:
            state.ceiling = current
        self._registry.set_media_mode(room, identity, mode, reason)
        self._metrics.mode_changes.labels(reason).inc()
        state.last_set = mode
        state.healthy_since = None
        state.network = state.network or reason in NETWORK_REASONS
        if not down and mode == state.ceiling:
            state.ceiling = state.last_set = None
            state.network = False
        log.info(
            "media mode changed",
            extra={"room": room, "identity": identity, "mode": str(mode), "reason": reason},
        )

    @staticmethod
    def _incoming(media: RoomMedia, peer: Peer, kind: str) -> Publication | None:
        """The publication of `kind` this connection feeds, if it publishes one."""
        for incoming in peer.incoming:
            if incoming.kind == kind and incoming.publication is not None:
                return incoming.publication
        return None

    def _silent(
        self, publication: Publication | None, peer: Peer, now: float, share: float = 1.0
    ) -> bool:
        started = peer.connected_at or now
        silence = self._settings.media_silence_seconds * share
        if publication is None:
            return now - started >= silence
        if publication.paused:
            return False
        last = max(publication.last_frame_at or 0.0, publication.expected_since, started)
        return now - last >= silence

    def _fresh(self, publication: Publication | None, now: float) -> bool:
        return (
            publication is not None
            and not publication.paused
            and publication.last_frame_at is not None
            and now - publication.last_frame_at < self._fresh_seconds
        )

    async def sample(self, now: float) -> None:
        for media in list(self._sfu.rooms.values()):
            for peer in list(media.peers.values()):
                if peer.connected_at is None or peer.closed:
                    continue
                try:
                    await self._sample(peer, now)
                except Exception:
                    log.debug("stats failed", exc_info=True)

    async def _sample(self, peer: Peer, now: float) -> None:
        report = await peer.pc.getStats()
        totals = Counters(at=now)
        media_ssrcs = {
            ssrc for incoming in peer.incoming if (ssrc := peer.media_ssrc(incoming)) is not None
        }
        totals.packets_in, totals.packets_lost = inbound_media_packets(report.values(), media_ssrcs)
        rtts = []
        for stats in report.values():
            kind = stats.type
            if kind == "outbound-rtp":
                totals.packets_out += stats.packetsSent
                totals.bytes_out += stats.bytesSent
            elif kind == "remote-inbound-rtp" and stats.roundTripTime is not None:
                rtts.append(stats.roundTripTime)
            elif kind == "transport":
                totals.bytes_in += stats.bytesReceived
        quality = peer.quality
        before = quality.counters
        if before.at:
            elapsed = max(now - before.at, 1e-3)
            received = max(0, totals.packets_in - before.packets_in)
            lost = max(0, totals.packets_lost - before.packets_lost)
            quality.inbound_kbps = max(0, totals.bytes_in - before.bytes_in) * 8 / elapsed / 1000
            quality.outbound_kbps = max(0, totals.bytes_out - before.bytes_out) * 8 / elapsed / 1000
            quality.record_loss(
                100.0 * lost / (received + lost) if received + lost else 0.0,
                self._settings.media_loss_step_down_percent,
            )
            self._metrics.rtp_packets.labels("in").inc(received)
            self._metrics.rtp_packets.labels("out").inc(
                max(0, totals.packets_out - before.packets_out)
            )
            self._metrics.rtp_bytes.labels("in").inc(max(0, totals.bytes_in - before.bytes_in))
            self._metrics.rtp_bytes.labels("out").inc(max(0, totals.bytes_out - before.bytes_out))
        quality.counters = totals
        quality.packets_in, quality.packets_out = totals.packets_in, totals.packets_out
        quality.bytes_in, quality.bytes_out = totals.bytes_in, totals.bytes_out
        quality.rtt_ms = 1000 * sum(rtts) / len(rtts) if rtts else None
        quality.sampled_at = time.time()
        if before.at and now - quality.event_at >= QUALITY_EVENT_SECONDS:
            quality.event_at = now
            self._bus.publish(
                MediaQualitySampled(
                    peer.room,
                    identity=peer.identity,
                    inbound_kbps=round(quality.inbound_kbps, 1),
                    outbound_kbps=round(quality.outbound_kbps, 1),
                    loss_percent=round(quality.loss_percent, 2),
                    rtt_ms=round(quality.rtt_ms, 1) if quality.rtt_ms is not None else None,
                )
            )
