"""The SFU: per room, who publishes what and who receives it.

Each participant has at most one `Peer` (PeerConnection) and at most one audio, one
camera and one screen-share `Publication` (a second video track in their offer: the
first video m-line is the camera unless the offer's `sources` says otherwise; the
screen is forwarded only while they share, `media_control {"screen": true}`). A publication belongs to the participant, not to the
connection, so a media reconnect keeps every subscriber's track. Room membership
comes from the event bus: when a participant leaves, their publications end and the
others are renegotiated without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.config import Settings
from server.errors import Conflict, NotFound
from server.media import aiortc_internals as internals
from server.media import forward_only
from server.media.downlink_pause import Video
from server.media.forwarding import SCREEN, ForwardedTrack, Publication, same_codec
from server.media.ice import sfu_configuration
from server.media.ladder_monitor import LadderMonitor
from server.media.loss_repair import RENACK_SECONDS
from server.media.metrics import MediaMetrics
from server.media.peer import Incoming, Outgoing, Peer
from server.media.probe import MediaProbes
from server.media.publisher_cap import FLOOR, RESEND_CHANGE, Take, decide, worth_sending
from server.media.reported_loss import ReportedLoss
from server.media.rtp_output import RtpOutput
from server.media.sending import DirectSend, QueuedSend
from server.media.simulcast import Layers
from server.media.simulcast_choice import LayerState, choose
from server.media.speakers import SpeakerDetector
from server.media.transcode import Transcoder
from server.rooms.events import (
    EventBus,
    MediaConnectionLost,
    MediaControlsChanged,
    MediaModeChanged,
    MediaReconnected,
    ParticipantLeft,
    RoomEvent,
    SessionEnded,
)
from server.rooms.model import MediaMode
from server.rooms.registry import RoomRegistry

log = logging.getLogger("pairwise.media.sfu")

# A subscriber's feedback (REMB, reported loss) is acted on at most this often: Chromium
# sends a REMB about every 100-200 ms and a receiver report a second; a layer switch
# itself waits for a keyframe.
FEEDBACK_GAP_S = 0.05

# (room, identity, event, payload): how the SFU reaches one participant's client.
Notify = Callable[[str, str, str, dict[str, Any]], Awaitable[None]]


@dataclass
class Controls:
    """What a participant chose: send audio, send video, receive video, share a screen."""

    audio: bool = True
    video: bool = True
    receive_video: bool = True
    screen: bool = False

    def public(self) -> dict[str, bool]:
        return {
            "audio": self.audio,
            "video": self.video,
            "receive_video": self.receive_video,
            "screen": self.screen,
        }


@dataclass
class RoomMedia:
    name: str
    peers: dict[str, Peer] = field(default_factory=dict)
    publications: dict[tuple[str, str], Publication] = field(default_factory=dict)
    controls: dict[str, Controls] = field(default_factory=dict)
    speakers: SpeakerDetector = field(default_factory=SpeakerDetector)
    latest_offers: dict[str, int] = field(default_factory=dict)  # identity → its number

    def publications_of(self, identity: str) -> list[Publication]:
        return [p for (who, _), p in self.publications.items() if who == identity]

    def listed(self, publication: Publication) -> bool:
        """Whether the publication goes to subscribers: a screen only while shared."""
        if publication.source != SCREEN:
            return True
        controls = self.controls.get(publication.identity)
        return controls is not None and controls.screen


class Sfu:
    def __init__(
        self,
        settings: Settings,
        registry: RoomRegistry,
        bus: EventBus,
        metrics: MediaMetrics,
        notify: Notify | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.bus = bus
        self.metrics = metrics
        self.notify = notify
        self.rooms: dict[str, RoomMedia] = {}
        self.ladder = LadderMonitor(self, settings, registry, bus, metrics)
        self.probes = MediaProbes(settings)  # pre-join connection checks
        self._background: set[asyncio.Task[Any]] = set()
        self._offer_numbers = itertools.count(1)  # unique across rooms coming and going
        # Called with each new publication (the phone bridge mixes room audio from them).
        self.on_publication: list[Callable[[Publication], None]] = []

    async def start(self) -> None:
        internals.check()
        internals.guard_rtcp()
        internals.drop_oversized_datagrams()
        self.bus.subscribe(
            self._on_event, "sfu", kinds=(ParticipantLeft, SessionEnded, MediaModeChanged)
        )
        self.ladder.start()

    async def stop(self) -> None:
        await self.ladder.stop()
        await self.probes.close_all()
        for room in list(self.rooms.values()):
            for peer in list(room.peers.values()):
                await self._close_peer(peer)
            for publication in room.publications.values():
                publication.close()
        self.rooms.clear()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    # -- the client's side of negotiation --------------------------------------------

    async def connect(
        self,
        room: str,
        identity: str,
        offer_sdp: str,
        may_publish: bool = True,
        reconnect_reason: str | None = None,
        sources: dict[str, str] | None = None,
    ) -> str:
        """A fresh PeerConnection for a participant from the client's offer; returns the
        answer. Replaces the participant's previous connection, if any. Without
        `may_publish` (an observer) the tracks it sends are read and dropped. `sources`
        (mid → "camera" or "screen") names the client's video m-lines. Of a participant's
        offers that overlap, the latest wins; an earlier one finishing after it is refused
        (`offer_superseded`) instead of replacing it, whatever each one awaited."""
        self.registry.require(room, identity)
        media = self.rooms.setdefault(room, RoomMedia(room))
        number = media.latest_offers[identity] = next(self._offer_numbers)
        peer = Peer(
            room,
            identity,
            sfu_configuration(self.settings),
            self._offer_sender(room, identity),
            answer_timeout=self.settings.media_answer_timeout_seconds,
        )
        peer.sources = dict(sources or {})
        peer.may_send = self._forward_only_for(media, identity)
        peer.on_track = self._on_track if may_publish else self._drop_track
        peer.on_negotiated = self._on_negotiated
        peer.on_failed = self.fail_soon
        try:
            answer = await peer.accept_offer(offer_sdp)
        except Exception:
            await peer.close()  # a refused offer leaves the working connection alone
            raise
        if media.latest_offers.get(identity) != number:
            await peer.close()
            raise _superseded()
        # Swapped before the old one's close is awaited: two offers of one participant
        # finishing together each closed the same old one, the later overwrote the
        # earlier, and that one stayed open and counted (a storm of offers leaked them).
        previous = media.peers.get(identity)
        media.peers[identity] = peer
        self.metrics.peers.inc()
        if previous is not None:
            await self._close_peer(previous)
        if media.peers.get(identity) is not peer:  # replaced, or gone, meanwhile
            if media.latest_offers.get(identity) != number:
                raise _superseded()
            return answer
        for publication in media.publications.values():
            if publication.identity != identity and media.listed(publication):
                self._forward(publication, peer)
        for publication in media.publications_of(identity):
            self.forward_to_room(publication)
        if media.speakers.active is not None:  # who speaks now, for a newcomer
            self._spawn(
                self._notify(room, identity, "active_speaker", {"identity": media.speakers.active})
            )
        if reconnect_reason is not None:
            self.bus.publish(MediaReconnected(room, identity=identity, reason=reconnect_reason))
        return answer

    async def answer(self, room: str, identity: str, answer_sdp: str, revision: int) -> None:
        await self._peer(room, identity).accept_answer(answer_sdp, revision)

    def control(
        self,
        room: str,
        identity: str,
        audio: bool | None = None,
        video: bool | None = None,
        receive_video: bool | None = None,
        screen: bool | None = None,
    ) -> Controls:
        """Mute/unmute, camera on/off, audio-only receive, screen share on/off. Unset
        values stay as they are."""
        self.registry.require(room, identity)
        media = self.rooms.setdefault(room, RoomMedia(room))
        controls = media.controls.setdefault(identity, Controls())
        sent_before = (controls.audio, controls.video)
        if audio is not None:
            controls.audio = audio
        if video is not None:
            controls.video = video
        if receive_video is not None:
            controls.receive_video = receive_video
        if screen is not None and screen != controls.screen:
            controls.screen = screen
            self._share(media, identity, screen)
        for publication in media.publications_of(identity):
            publication.set_paused(not self._sends(controls, publication))
        if not controls.audio:
            self._forget_speaker(media, identity)
        peer = media.peers.get(identity)
        if peer is not None:
            for outgoing in peer.outgoing.values():
                if outgoing.track.kind == "video":
                    outgoing.track.set_enabled(controls.receive_video)
            self.check_downlink(peer)  # video turned off ends its pauses now
        if (controls.audio, controls.video) != sent_before:
            self.bus.publish(
                MediaControlsChanged(
                    room, identity=identity, audio=controls.audio, video=controls.video
                )
            )
        return controls

    async def disconnect(self, room: str, identity: str) -> bool:
        """Close a participant's PeerConnection (they stay in the room, in chat)."""
        media = self.rooms.get(room)
        peer = media.peers.pop(identity, None) if media else None
        if peer is None:
            return False
        await self._close_peer(peer)
        return True

    def forwarded_streams(self) -> int:
        """Tracks forwarded to a subscriber on this node (the cluster weighs node load by it)."""
        return sum(
            len(p.subscribers) for media in self.rooms.values() for p in media.publications.values()
        )

    def peer(self, room: str, identity: str) -> Peer | None:
        media = self.rooms.get(room)
        return media.peers.get(identity) if media else None

    # -- room membership ---------------------------------------------------------------

    async def remove(self, room: str, identity: str) -> None:
        """The participant left the room: end their connection and their publications."""
        media = self.rooms.get(room)
        if media is None:
            return
        peer = media.peers.pop(identity, None)
        if peer is not None:
            await self._close_peer(peer)
        await self._unpublish(media, *media.publications_of(identity))
        media.controls.pop(identity, None)
        self._forget_speaker(media, identity)
        if not media.peers and not media.publications and self.rooms.get(room) is media:
            del self.rooms[room]

    def hold_video(self, room: str, identity: str, hold: bool) -> None:
        """Stop (or resume) forwarding a participant's video without ending it: the
        subscribers keep the track, and it resumes on a keyframe."""
        media = self.rooms.get(room)
        for key in ("video", SCREEN):
            publication = media.publications.get((identity, key)) if media else None
            if publication is not None:
                publication.set_held(hold)

    async def _on_event(self, event: RoomEvent) -> None:
        if isinstance(event, MediaModeChanged):
            # Video goes out only while its sender is in video mode, whoever moved them:
            # the others get this same `media_mode` event and show "video paused" instead
            # of a frozen last frame, and going back to video starts from a keyframe.
            self.hold_video(event.room, event.identity, hold=event.mode != MediaMode.VIDEO)
        elif isinstance(event, ParticipantLeft):
            await self.remove(event.room, event.identity)
        elif isinstance(event, SessionEnded) and event.room in self.rooms:
            media = self.rooms[event.room]
            for identity in {*media.peers, *(who for who, _ in media.publications)}:
                await self.remove(event.room, identity)
            self.rooms.pop(event.room, None)

    # -- forwarding --------------------------------------------------------------------

    def publish(
        self, room: str, identity: str, kind: str, source: str | None = None
    ) -> Publication:
        """The participant's publication of `kind` (a `source` other than the default
        for the kind: "screen"), created on first use."""
        media = self.rooms.setdefault(room, RoomMedia(room))
        key = SCREEN if source == SCREEN else kind
        publication = media.publications.get((identity, key))
        if publication is None:
            publication = Publication(room, identity, kind, self.metrics, source=source)
            controls = media.controls.setdefault(identity, Controls())
            publication.paused = not self._sends(controls, publication)
            media.publications[(identity, key)] = publication
            if kind == "audio":
                publication.on_audio_level = self._speaker_listener(media, identity)
            for callback in self.on_publication:
                callback(publication)
        return publication

    def _speaker_listener(self, media: RoomMedia, identity: str) -> Callable[[int, float], None]:
        """Feeds a publisher's audio levels (each with when it came) to the room's speaker
        detector; a new active speaker is told to everyone connected in the room
        (`active_speaker`)."""

        def heard(level: int, at: float) -> None:
            speaker = media.speakers.observe(identity, level, at)
            if speaker is not None:
                self._announce_speaker(media, speaker)

        return heard

    def _forget_speaker(self, media: RoomMedia, identity: str) -> None:
        """A participant muted or left: if they were the speaker, nobody is (`null`)."""
        if media.speakers.forget(identity):
            self._announce_speaker(media, None)

    def _announce_speaker(self, media: RoomMedia, speaker: str | None) -> None:
        for listener in list(media.peers):
            self._spawn(self._notify(media.name, listener, "active_speaker", {"identity": speaker}))

    @staticmethod
    def _drop_track(peer: Peer, incoming: Incoming) -> None:
        internals.tap_encoded_frames(incoming.transceiver.receiver, lambda codec, frame: None)

    def forward_to_room(self, publication: Publication) -> None:
        """Forward a publication to everyone connected in its room but its publisher."""
        media = self.rooms.get(publication.room)
        if media is None or not media.listed(publication):
            return
        for other in list(media.peers.values()):
            if other.identity != publication.identity and publication not in other.outgoing:
                self._forward(publication, other)

    def unpublish(self, room: str, identity: str, kind: str) -> None:
        """End one publication (the subscribers' tracks end, renegotiated soon)."""
        media = self.rooms.get(room)
        publication = media.publications.get((identity, kind)) if media else None
        if media is not None and publication is not None:
            self._spawn(self._unpublish(media, publication))

    async def _unpublish(self, media: RoomMedia, *publications: Publication) -> None:
        """End `publications`: each subscriber is renegotiated once for all of them."""
        if not publications:
            return
        for publication in publications:
            media.publications.pop((publication.identity, publication.key), None)
        for other in list(media.peers.values()):
            await other.remove_outgoing(*publications)
        for publication in publications:
            publication.close()

    def _on_track(self, peer: Peer, incoming: Incoming) -> None:
        receiver = incoming.transceiver.receiver
        source = self._source(peer, incoming)
        if source is None:
            # One audio, one camera and one screen per participant; extra tracks are read
            # and dropped.
            self._drop_track(peer, incoming)
            return
        publication = self.publish(peer.room, peer.identity, incoming.kind, source)

        def request_keyframe() -> bool:
            ssrc = self._upstream_ssrc(peer, incoming)
            if ssrc is not None:
                internals.send_pli(receiver, ssrc)
            return ssrc is not None

        incoming.publication = publication
        section = peer.simulcast.get(incoming.transceiver.mid or "")
        if section is not None and incoming.kind == "video":
            self._receive_simulcast(peer, incoming, publication, Layers(section))
            return
        incoming.generation = publication.attach(
            internals.negotiated_codec(incoming.transceiver), request_keyframe
        )
        sink = publication.sink_for(incoming.generation)
        if incoming.kind == "video":
            internals.tap_video(receiver, sink, renack_seconds=RENACK_SECONDS)
            self._cap_upstream(peer, incoming, publication)
        else:
            internals.tap_encoded_frames(receiver, sink)

    def _receive_simulcast(
        self, peer: Peer, incoming: Incoming, publication: Publication, layers: Layers
    ) -> None:
        """A simulcast m-line: each layer reassembled apart and asked for keyframes by
        its own SSRC (known from the first packet that names its RID)."""
        receiver = incoming.transceiver.receiver

        def request_layer(index: int) -> bool:
            ssrc = layers.ssrc_of(index)
            if ssrc is None or peer.closed or peer.state != "connected":
                return False
            internals.send_pli(receiver, ssrc)
            return True

        incoming.generation = publication.attach(
            internals.negotiated_codec(incoming.transceiver),
            lambda: False,
            layers=layers.count,
            request_layer=request_layer,
        )
        publication.on_layers = lambda: self._layers_changed(publication)
        internals.tap_simulcast(
            receiver,
            layers,
            publication.layer_sink_for(incoming.generation, layers.index_of),
            renack_seconds=RENACK_SECONDS,
        )

    def _layers_changed(self, publication: Publication) -> None:
        media = self.rooms.get(publication.room)
        for peer in list(media.peers.values()) if media else []:
            if publication in peer.outgoing:
                self.choose_layers(peer)

    def choose_layers(self, peer: Peer) -> None:
        """Pick each simulcast track's layer for this subscriber (simulcast_choice.py);
        a new target is asked for a keyframe and moved to when it comes."""
        now = time.monotonic()
        tracks = [o.track for o in peer.outgoing.values() if o.negotiated]
        for track in tracks:
            publication = track.publication
            if not publication.layers or not track.enabled:
                continue
            budget = self._budget(peer, track, tracks)
            states = [
                LayerState(layer.bitrate, layer.height, layer.active(now))
                for layer in publication.layers
            ]
            view = track.view[1] if track.view is not None else None
            probing = bool(track.choice.probe_rate)
            target = choose(
                track.choice, states, budget, track.loss, view, now, rising=peer.remb.rising
            )
            if bool(track.choice.probe_rate) != probing:  # padding starts or stops
                publication.steady_changed()
            if target != track.target:
                track.target = target
                publication.request_layer_keyframe(target, "layer_switch")

    def _budget(
        self, peer: Peer, track: ForwardedTrack, tracks: list[ForwardedTrack]
    ) -> float | None:
        """What the subscriber can take on `track` (bit/s): its REMB, which a browser
        gives for all its video streams, less what it gets on its other video tracks;
        None before its first REMB."""
        remb = peer.remb.value
        if remb is None:
            return None
        others = sum(
            self._rate(t) for t in tracks if t is not track and t.enabled and t.kind == "video"
        )
        return max(0.0, remb - others)

    @staticmethod
    def _upstream_ssrc(peer: Peer, incoming: Incoming) -> int | None:
        """The SSRC to address RTCP about `incoming` to its publisher, or None while it
        cannot be sent (no packet seen yet, or the connection is not up)."""
        ssrc = peer.media_ssrc(incoming)
        return None if peer.closed or peer.state != "connected" else ssrc

    def _cap_upstream(self, peer: Peer, incoming: Incoming, publication: Publication) -> None:
        """A single-layer video receiver: from now on its publisher is asked (REMB) for
        no more than its subscribers can take (publisher_cap.py)."""
        upstream = internals.UpstreamCap(incoming.transceiver.receiver)

        def ask(bitrate: float | None) -> bool:
            ssrc = self._upstream_ssrc(peer, incoming)
            if ssrc is not None:
                upstream.ask(bitrate, ssrc)
            return ssrc is not None

        publication.ask_bitrate = ask
        publication.cap_sent = None  # a new receiver: the cap in force is sent again
        publication.on_unsubscribe = lambda: self.cap_publisher(publication)

    def cap_publisher(self, publication: Publication) -> None:
        """Ask a single-layer video publisher for no more than the least its subscribers
        can take now, or lift the cap (publisher_cap.py)."""
        ask = publication.ask_bitrate
        media = self.rooms.get(publication.room)
        if ask is None or media is None or publication.layers:
            return
        now = time.monotonic()
        takes = []
        for track in publication.subscribers:
            peer = media.peers.get(track.subscriber)
            if peer is None or not track.enabled or track.output is None:
                continue  # audio only, or transcoded: its own encoder adapts
            tracks = [o.track for o in peer.outgoing.values() if o.negotiated]
            budget = self._budget(peer, track, tracks)
            takes.append(Take(peer.identity, budget, peer.remb.at, peer.remb.rising, track.loss))
        value = decide(publication.cap, takes, publication.meter.bitrate, now)
        if worth_sending(value, publication.cap_sent) and ask(value):
            if (value is None) != (publication.cap_sent is None):
                log.info(
                    "publisher cap" if value is not None else "publisher cap lifted",
                    extra={
                        "room": publication.room,
                        "identity": publication.identity,
                        "bitrate": value,
                    },
                )
            publication.cap_sent = value

    @staticmethod
    def _rate(track: ForwardedTrack) -> float:
        """What the SFU sends on a track now (bit/s)."""
        publication = track.publication
        if publication.layers:
            layer = track.layer if track.layer is not None else track.target
            return publication.layers[layer].bitrate if layer < len(publication.layers) else 0.0
        return publication.meter.bitrate

    def view(self, room: str, identity: str, views: Sequence[tuple[str, str, int, int]]) -> int:
        """The subscriber shows these (owner, source, width, height) tiles: layers are
        chosen no larger than needed. Returns how many matched a forwarded track."""
        peer = self._peer(room, identity)
        matched = 0
        for outgoing in peer.outgoing.values():
            publication = outgoing.publication
            for owner, source, width, height in views:
                if publication.identity == owner and publication.source == source:
                    outgoing.track.view = (width, height)
                    matched += 1
        self.choose_layers(peer)
        return matched

    @staticmethod
    def _source(peer: Peer, incoming: Incoming) -> str | None:
        """What an incoming track shows, or None when the participant already has one
        of that. Video: what the offer's `sources` names its m-line, else the first is
        the camera and the next the screen."""
        taken = {i.publication.source for i in peer.incoming if i.publication is not None}
        if incoming.kind == "audio":
            source = "microphone"
        else:
            named = peer.sources.get(incoming.transceiver.mid or "")
            if named in ("camera", SCREEN):
                source = named
            else:
                source = "camera" if "camera" not in taken else SCREEN
        return None if source in taken else source

    @staticmethod
    def _forward_only_for(media: RoomMedia, identity: str) -> set[str]:
        """The forward-only codecs (VP9, AV1) a participant's offer may be answered
        with: those every other connected participant decodes, and never another
        codec than its video publications already have (forward_only.py)."""
        had = {
            p.codec.mimeType.lower()
            for p in media.publications_of(identity)
            if p.kind == "video" and p.codec is not None
        }
        if had:
            return had & forward_only.ALL
        return forward_only.shared(p.decodes for who, p in media.peers.items() if who != identity)

    def _forward(self, publication: Publication, peer: Peer) -> None:
        codec = publication.codec
        if (
            codec is not None
            and forward_only.covers(codec)
            and codec.mimeType.lower() not in peer.decodes
        ):
            self._unavailable(publication, peer)
            return
        media = self.rooms[peer.room]
        track = ForwardedTrack(publication, peer.identity)
        controls = media.controls.setdefault(peer.identity, Controls())
        track.wanted = publication.kind == "audio" or controls.receive_video
        peer.add_outgoing(publication, track)

    def _unavailable(self, publication: Publication, peer: Peer) -> None:
        """The subscriber cannot decode the publication's codec (VP9 or AV1), which the
        SFU cannot transcode: it gets no track for it, and is told why."""
        codec = forward_only.name(publication.codec) if publication.codec else ""
        log.info(
            "codec not forwarded",
            extra={
                "room": peer.room,
                "from": publication.identity,
                "to": peer.identity,
                "codec": codec,
            },
        )
        self._spawn(
            self._notify(
                peer.room,
                peer.identity,
                "media_unavailable",
                {
                    "identity": publication.identity,
                    "kind": publication.kind,
                    "source": publication.source,
                    "reason": "codec_unsupported",
                    "codec": codec,
                },
            )
        )

    def _on_negotiated(self, peer: Peer, outgoing: Outgoing) -> None:
        publication, track = outgoing.publication, outgoing.track
        codec = internals.negotiated_codec(outgoing.transceiver)
        if forward_only.covers(publication.codec) and (
            codec is None or publication.codec is None or not same_codec(publication.codec, codec)
        ):
            self._unavailable(publication, peer)  # nothing to transcode VP9 or AV1 with
            return
        if (
            publication.codec is not None
            and codec is not None
            and not same_codec(publication.codec, codec)
        ):
            track.use(QueuedSend(track.kind, self.metrics, Transcoder(publication.codec, codec)))
            log.info(
                "transcoding",
                extra={
                    "room": peer.room,
                    "from": publication.identity,
                    "to": peer.identity,
                    "codec_in": publication.codec.name,
                    "codec_out": codec.name,
                },
            )
        elif codec is not None:
            codecs, extensions = internals.negotiated_parameters(outgoing.transceiver)
            output = RtpOutput(
                internals.RtpLink(outgoing.transceiver.sender),
                codecs,
                extensions,
                outgoing.transceiver.mid,
                self.metrics.retransmitted_packets,
            )
            output.room = peer.resend_room
            track.use(DirectSend(track.kind, self.metrics, output))
        else:  # no codec negotiated: aiortc's sender gets the packets as they are
            track.use(QueuedSend(track.kind, self.metrics))
        internals.on_keyframe_request(
            outgoing.transceiver.sender, lambda: publication.request_keyframe("subscriber_pli")
        )
        if publication.kind == "video":
            internals.on_feedback(
                outgoing.transceiver.sender,
                lambda bitrate: self._remb(peer, bitrate),
                lambda fraction, highest: self._loss(peer, track, fraction, highest),
            )
        publication.subscribe(track)
        if publication.layers:
            self.choose_layers(peer)

    def _remb(self, peer: Peer, bitrate: float) -> None:
        peer.remb.observe(bitrate, time.monotonic())
        self._feedback(peer)

    def _loss(self, peer: Peer, track: ForwardedTrack, fraction: float, highest: int) -> None:
        if not track.reported_loss.add(fraction, highest):
            return  # too few packets since the last reading (reported_loss.py)
        self._feedback(peer)

    def _feedback(self, peer: Peer) -> None:
        """The subscriber's estimate or reported loss changed: act on it now, unless it
        was acted on in the last `FEEDBACK_GAP_S`; then once that has passed. Each REMB
        names the streams it is for, and a datagram holds dozens: acted on per REMB, a
        subscriber made the SFU choose its layers and cap its publishers thousands of
        times a second (tests/security/sfu/test_sfu_abuse_feedback.py)."""
        now = time.monotonic()
        wait = peer.feedback_at + FEEDBACK_GAP_S - now
        if wait <= 0:
            self._act_on_feedback(peer, now)
        elif peer.feedback_timer is None:
            loop = asyncio.get_running_loop()
            peer.feedback_timer = loop.call_later(wait, self._deferred_feedback, peer)

    def _deferred_feedback(self, peer: Peer) -> None:
        peer.feedback_timer = None
        if not peer.closed:
            self._feedback(peer)  # (the loop's timer may fire a millisecond early)

    def _act_on_feedback(self, peer: Peer, now: float) -> None:
        """Its layers chosen, the single-layer publishers it watches capped, its downlink
        checked."""
        if peer.feedback_timer is not None:  # due, but the loop came here first
            peer.feedback_timer.cancel()
            peer.feedback_timer = None
        peer.feedback_at = now
        self.choose_layers(peer)
        for outgoing in list(peer.outgoing.values()):
            if outgoing.publication.kind == "video" and not outgoing.publication.layers:
                self.cap_publisher(outgoing.publication)
        self.check_downlink(peer)

    def check_downlink(self, peer: Peer) -> None:
        """Pause a video track to a subscriber whose link cannot carry even the least of
        its video, or try a paused one again (downlink_pause.py); the subscriber is told
        (`media_paused`). Each forwarded track is its own key: a publication forwarded
        again (a share restarted) starts unpaused."""
        if peer.closed:
            return
        now = time.monotonic()
        tracks = [
            outgoing.track
            for outgoing in peer.outgoing.values()
            if outgoing.negotiated
            and outgoing.track.kind == "video"
            and outgoing.track.wanted
            and outgoing.track.output is not None  # a transcoder's encoder adapts itself
        ]
        # Turned off by the subscriber meanwhile: the rules forget it, and so does the
        # track (a pause kept on it would outlive the choice and never be tried again).
        dropped = [
            outgoing.track
            for outgoing in peer.outgoing.values()
            if outgoing.track.link_paused and outgoing.track not in tracks
        ]
        videos = [
            Video(
                track,
                at_floor=self._at_floor(track, now),
                loss=track.loss,
                rate=self._rate(track) if track.enabled else 0.0,
                screen=track.publication.source == SCREEN,
                area=track.view[0] * track.view[1] if track.view is not None else None,
                publisher=track.publication.identity,
            )
            for track in tracks
        ]
        changes = peer.downlink.update(videos, peer.remb.value, peer.remb.rising, now)
        moved: list[tuple[ForwardedTrack, bool]] = [(track, False) for track in dropped]
        for keys, paused in ((changes.pause, True), (changes.resume, False)):
            moved += [(track, paused) for track in keys if isinstance(track, ForwardedTrack)]
        for track, paused in moved:  # first all of them, then what follows from each
            track.set_link_paused(paused)
        if peer.downlink_timer is not None:
            peer.downlink_timer.cancel()
            peer.downlink_timer = None
        at = peer.downlink.next_resume()
        if at is not None:
            loop = asyncio.get_running_loop()
            peer.downlink_timer = loop.call_later(max(0.0, at - now), self.check_downlink, peer)
        for track, paused in moved:
            self._told_paused(peer, track, paused)
        if moved:
            self.choose_layers(peer)  # the others' budgets changed

    def _told_paused(self, peer: Peer, track: ForwardedTrack, paused: bool) -> None:
        """What follows a track's pause (or its end) to this subscriber: counted, logged,
        the subscriber told, the publisher cap brought up to date."""
        publication = track.publication
        if paused:
            self.metrics.link_pauses.inc()
        else:
            track.reported_loss = ReportedLoss()  # what it lost before says nothing now
        log.info(
            "video paused for the subscriber's link" if paused else "video pause ended",
            extra={"room": peer.room, "identity": peer.identity, "from": publication.identity},
        )
        self._spawn(
            self._notify(
                peer.room,
                peer.identity,
                "media_paused",
                {
                    "identity": publication.identity,
                    "source": publication.source,
                    "paused": paused,
                    "reason": "bandwidth",
                },
            )
        )
        if not publication.layers:
            self.cap_publisher(publication)

    @staticmethod
    def _at_floor(track: ForwardedTrack, now: float) -> bool:
        """Nothing smaller can be sent on it: its lowest simulcast layer, or a single
        layer whose publisher is asked for the cap's floor."""
        publication = track.publication
        if publication.layers:
            active = [i for i, layer in enumerate(publication.layers) if layer.active(now)]
            return bool(active) and track.target == min(active) and track.layer == track.target
        cap = publication.cap_sent
        return cap is not None and cap <= FLOOR * (1 + RESEND_CHANGE)

    @staticmethod
    def _sends(controls: Controls, publication: Publication) -> bool:
        if publication.source == SCREEN:
            return controls.screen
        return controls.audio if publication.kind == "audio" else controls.video

    def _share(self, media: RoomMedia, identity: str, on: bool) -> None:
        """Start or stop forwarding the participant's screen: subscribers get its track
        (one renegotiation each) or lose it."""
        screen = media.publications.get((identity, SCREEN))
        if screen is None:
            return  # announced once the client's screen m-line arrives
        screen.set_paused(not on)
        if on:
            self.forward_to_room(screen)
        else:
            for other in list(media.peers.values()):
                if screen in other.outgoing:
                    self._spawn(other.remove_outgoing(screen))

    # -- failures ----------------------------------------------------------------------

    def fail_soon(self, peer: Peer, reason: str) -> None:
        """`fail`, in the background (from a callback or the ladder monitor's tick)."""
        self._spawn(self.fail(peer, reason))

    async def fail(self, peer: Peer, reason: str) -> None:
        """The connection is unusable: close it, step the participant down to text, record
        why, and tell the client to rebuild it (`media_failed` → `media_reconnect`)."""
        media = self.rooms.get(peer.room)
        if media is None or media.peers.get(peer.identity) is not peer:
            return
        del media.peers[peer.identity]
        await self._close_peer(peer)
        self.ladder.connection_lost(peer.room, peer.identity, reason)
        self.bus.publish(MediaConnectionLost(peer.room, identity=peer.identity, reason=reason))
        log.info(
            "media connection lost",
            extra={"room": peer.room, "identity": peer.identity, "reason": reason},
        )
        await self._notify(peer.room, peer.identity, "media_failed", {"reason": reason})

    async def _close_peer(self, peer: Peer) -> None:
        if not peer.closed:
            self.metrics.peers.dec()
        with contextlib.suppress(Exception):
            await peer.close()

    def _offer_sender(
        self, room: str, identity: str
    ) -> Callable[[str, int, dict[str, dict[str, str]]], Awaitable[None]]:
        async def send(sdp: str, revision: int, tracks: dict[str, dict[str, str]]) -> None:
            await self._notify(
                room,
                identity,
                "media_renegotiate",
                {"sdp": sdp, "type": "offer", "revision": revision, "tracks": tracks},
            )

        return send

    async def _notify(self, room: str, identity: str, event: str, data: dict[str, Any]) -> None:
        if self.notify is not None:
            await self.notify(room, identity, event, data)

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _peer(self, room: str, identity: str) -> Peer:
        peer = self.peer(room, identity)
        if peer is None:
            raise NotFound(
                "there is no media connection; send media_offer first", code="no_media_connection"
            )
        return peer


def _superseded() -> Conflict:
    return Conflict(
        "a newer media offer of yours replaced this one; use that one's answer",
        code="offer_superseded",
    )
