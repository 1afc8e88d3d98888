"""Attacks through a connection's feedback and header extensions: a NACK flood
(rtp_output.py's resend budget), a REMB that lies about its SSRCs (aiortc_internals'
rtcp.py, internal 19), and a simulcast publisher joining a room where someone already
publishes (the RID extensions taught to the transport: simulcast_receive.py)."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
from aiortc.rtp import (
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    pack_remb_fci,
)

from server.jobs.clock import ManualClock
from server.media.aiortc_internals.rtcp import (
    NACK_LOST_MAX,
    NACK_NUMBERS_BURST,
    RTCP_DATAGRAMS_BURST,
    feedback_budget,
)
from server.media.rtp_output import HISTORY
from server.media.sfu import FEEDBACK_GAP_S
from server.signaling import ratelimit
from tests.media.conftest import Join
from tests.media.simulcast_publisher import SimulcastPublisher
from tests.media.support import Encoded, MediaClient, send_remb, without_abs_send_time
from tests.security.sfu.test_sfu_abuse import (
    ROOM,
    Watch,
    _mallorys_video,
    _room,
    _rtcp,
    _video_receiver,
    flood,
    send_raw_rtcp,
)
from tests.support.parts import ServerParts
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow


async def test_a_nack_flood_for_every_sequence_number_is_not_an_amplifier(
    join: Join, server: Any
) -> None:
    ada, bo, watch = await _room(join)
    mallory = await join("mallory", publish=False, decode=False, munge_answer=without_abs_send_time)
    await eventually(lambda: any(r.frames > 5 for r in mallory.of_kind("video")), timeout=20)
    receiver, ssrc = _video_receiver(mallory)
    # Every one of the 65,536 sequence numbers, most never sent: 16 packets of 256
    # entries, each entry naming 17 numbers (a PID and a full bitmask).
    nacks = [
        RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=ssrc, lost=[]) for _ in range(16)
    ]
    for n, packet in enumerate(nacks):
        packet.lost = [seq for seq in range(n * 4096, (n + 1) * 4096)]
    peer = ServerParts(server.app).sfu.peer(ROOM, "mallory")
    assert peer is not None
    outgoing = {o.track.kind: o.track for o in peer.outgoing.values()}
    output = outgoing["video"].output
    assert output is not None
    kept = sum(entry is not None for entry in output._history)
    retransmitted_at, packets_at = output.retransmitted, output.packets

    async def nack(i: int) -> None:
        await receiver._send_rtcp(nacks[i % len(nacks)])

    # every number NACKed 20 times in 0.4 s, then a REMB that says they were all read
    await watch.during(flood(320, 800, nack))
    marker = 1 << 22

    async def marked() -> bool:  # sent again until handled: the flood spent the budget
        send_remb(mallory, marker)
        await asyncio.sleep(0.1)
        return any(v == marker for _, v in peer.remb.history)

    await eventually(marked, what="the NACKs to be handled")
    retransmitted = output.retransmitted - retransmitted_at
    sent = output.packets - packets_at
    # A packet is sent again at most once per NACK round trip, not once per NACK: a
    # subscriber cannot make the SFU send it many times the stream.
    assert retransmitted <= kept + sent, (retransmitted, kept, sent)


async def _mallory_on_a_still_budget(
    join: Join, server: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[MediaClient, Watch, int, Any, ManualClock]:
    """Mallory watching ada in `_room`; the watch; the SSRC of ada's video at mallory;
    the SFU's sender of it to her; and the clock her connection's RTCP budget reads from
    her next datagram on (a new budget then: one a real datagram made before now reads
    the real clock). Her answer without abs-send-time: the SFU estimates her link from
    her REMBs."""
    ada, bo, watch = await _room(join)
    mallory = await join("mallory", publish=False, decode=False, munge_answer=without_abs_send_time)
    await eventually(lambda: any(r.frames > 5 for r in mallory.of_kind("video")), timeout=20)
    _, ssrc = _video_receiver(mallory)
    peer = ServerParts(server.app).sfu.peer(ROOM, "mallory")
    assert peer is not None
    output = {o.track.kind: o.track for o in peer.outgoing.values()}["video"].output
    assert output is not None
    sender = output._link._sender
    clock = ManualClock(0.0)
    monkeypatch.setattr(ratelimit, "clock", clock)
    monkeypatch.delattr(sender.transport._rtp_router, "_pairwise_feedback_budget", raising=False)
    return mallory, watch, ssrc, sender, clock


async def _shown_in_metrics(server: Any, what: str, dropped: int) -> None:
    """What the budget dropped reaches /metrics (the stats sampler reads it each sample)."""
    assert dropped > 0
    registry = ServerParts(server.app).registry

    def shown() -> float:
        value = registry.get_sample_value("pairwise_sfu_rtcp_dropped_total", {"what": what})
        return value or 0.0

    await eventually(lambda: shown() >= dropped, timeout=10, what=f"{what} dropped, in /metrics")


async def test_nacks_naming_thousands_of_numbers_cost_a_history_of_checks_each_and_a_budget(
    join: Join, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiortc expands each 4-byte NACK entry into up to 17 sequence numbers and checks
    each with a coroutine call, duplicates included: one datagram of 368 entries named
    6,256 numbers (5-10 ms of the loop; here 330 entries, what pylibsrtp protects in
    one). The SFU dedupes the list and cuts it at `NACK_LOST_MAX`
    (aiortc_internals/rtcp.py): at most that many checks a NACK; and a connection's
    NACKs together name at most `NACK_NUMBERS_BURST`, then `NACK_NUMBERS_PER_SECOND`
    (the budget's clock held still here, then moved a second)."""
    mallory, _, ssrc, sender, clock = await _mallory_on_a_still_budget(join, server, monkeypatch)
    peer = ServerParts(server.app).sfu.peer(ROOM, "mallory")
    assert peer is not None
    checks: list[int] = []
    retransmit = sender._retransmit

    async def counted(seq: int) -> None:
        checks.append(seq)
        await retransmit(seq)

    sender._retransmit = counted

    def nack(entries: list[tuple[int, int]]) -> bytes:  # (PID, bitmask) each, as sent
        fci = b"".join(struct.pack("!HH", pid, mask) for pid, mask in entries)
        words = 2 + len(fci) // 4
        return struct.pack("!BBHII", 0x81, 205, words, 1, ssrc) + fci

    # as many entries as pylibsrtp protects in one datagram (its trailer room is 148)
    distinct = nack([(17 * n, 0xFFFF) for n in range(330)])  # 5,610 numbers
    same = nack([(0, 0xFFFF)] * 330)  # the same 17 numbers, 330 times

    async def checks_made_for(packet: bytes) -> int:
        """The resend checks one NACK costs: counted until a one-number NACK sent after
        it is handled (a connection's RTCP is handled in order)."""
        before = len(checks)
        await send_raw_rtcp(mallory.pc, packet)
        await send_raw_rtcp(mallory.pc, nack([(65535, 0)]))
        await eventually(lambda: 65535 in checks[before:], what="the NACKs handled")
        return len(checks) - before - 1

    assert NACK_LOST_MAX == HISTORY  # the cut is a sender's history (rtcp.py cannot import it)
    assert await checks_made_for(distinct) == NACK_LOST_MAX
    assert checks[-NACK_LOST_MAX - 1 : -1] == list(range(17 * 330 - NACK_LOST_MAX, 17 * 330))
    assert await checks_made_for(same) == 17

    # A flood gets what is left of the burst, then nothing while the clock stands still
    # (a REMB after it, which takes no budget, marks it handled); a second later, a whole
    # NACK's worth again.
    for _ in range(NACK_NUMBERS_BURST // NACK_LOST_MAX):
        await send_raw_rtcp(mallory.pc, distinct)
    marker = 1 << 22
    send_remb(mallory, marker)
    await eventually(
        lambda: any(v == marker for _, v in peer.remb.history), what="the flood handled"
    )
    assert len(checks) == NACK_NUMBERS_BURST, len(checks)
    cut = feedback_budget(sender.transport._rtp_router).numbers_cut
    await _shown_in_metrics(server, "nack_numbers", cut)
    clock.advance(1.0)
    assert await checks_made_for(distinct) == NACK_LOST_MAX


async def test_rtcp_faster_than_any_browser_sends_is_handled_up_to_a_budget(
    join: Join, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A participant holds its connection's SRTCP keys, so it can send RTCP as fast as
    its link carries it, each datagram parsed, routed and handled. While the budget's
    clock stands still, at most `RTCP_DATAGRAMS_BURST` of mallory's are handled and the
    rest dropped and counted, and ada's video keeps reaching bo; once it moves, her RTCP
    is handled again."""
    mallory, watch, ssrc, sender, clock = await _mallory_on_a_still_budget(
        join, server, monkeypatch
    )
    handled: list[int] = []  # the PLIs that reached the SFU's sender of ada's video
    handle = sender._handle_rtcp_packet

    async def counted(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_PLI:
            handled.append(packet.media_ssrc)
        await handle(packet)

    sender._handle_rtcp_packet = counted
    pli = _rtcp(206, RTCP_PSFB_PLI, 2, struct.pack("!L", ssrc))
    count = 2 * RTCP_DATAGRAMS_BURST

    async def send(i: int) -> None:
        await send_raw_rtcp(mallory.pc, pli)

    await watch.during(flood(count, 2000, send))
    budget = feedback_budget(sender.transport._rtp_router)
    await eventually(
        lambda: len(handled) + budget.datagrams_dropped >= count, what="the flood handled"
    )
    assert 0 < len(handled) <= RTCP_DATAGRAMS_BURST, len(handled)
    await _shown_in_metrics(server, "datagrams", budget.datagrams_dropped)
    clock.advance(1.0)
    at = len(handled)
    await send_raw_rtcp(mallory.pc, pli)
    await eventually(lambda: len(handled) > at, what="a PLI handled a second later")


async def test_a_flood_of_rembs_is_acted_on_at_most_once_a_feedback_gap(
    join: Join, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each REMB is a subscriber's word on its link, and a datagram holds fifty: the SFU
    acted on each one (its layers chosen, the publishers it watches capped, its downlink
    checked). Now a subscriber's feedback is acted on at most once every
    `FEEDBACK_GAP_S`, and the last word still counts (acted on once the gap has passed)."""
    ada, bo, watch = await _room(join)
    mallory = await join("mallory", publish=False, decode=False, munge_answer=without_abs_send_time)
    await eventually(lambda: any(r.frames > 5 for r in mallory.of_kind("video")), timeout=20)
    _, ssrc = _video_receiver(mallory)
    sfu = ServerParts(server.app).sfu
    peer = sfu.peer(ROOM, "mallory")
    assert peer is not None
    rembs: list[float] = []
    acted: list[float | None] = []  # mallory's REMB each time her feedback was acted on
    remb, act = sfu._remb, sfu._act_on_feedback

    after: list[tuple[float | None, bool]] = []  # right after each: last acted on, one due

    def counted_remb(who: Any, bitrate: float) -> None:
        if who is peer:
            rembs.append(bitrate)
        remb(who, bitrate)
        if who is peer:
            after.append((acted[-1] if acted else None, peer.feedback_timer is not None))

    acted_at: list[float] = []

    def counted_act(who: Any, now: float) -> None:
        if who is peer:
            acted.append(peer.remb.value)
            acted_at.append(now)
        act(who, now)

    monkeypatch.setattr(sfu, "_remb", counted_remb)
    monkeypatch.setattr(sfu, "_act_on_feedback", counted_act)

    def remb_about(bitrate: int) -> bytes:  # one REMB for ada's video at mallory
        return _rtcp(206, 15, 5, bytes(4) + pack_remb_fci(bitrate, [ssrc]))

    fifty = b"".join(remb_about(300_000 + i) for i in range(50))

    async def send(i: int) -> None:
        await send_raw_rtcp(mallory.pc, fifty)

    await watch.during(flood(200, 200, send))
    assert len(rembs) > 1000, len(rembs)  # what the RTCP budget let through
    gaps = [b - a for a, b in zip(acted_at, acted_at[1:], strict=False)]
    assert min(gaps) >= FEEDBACK_GAP_S, (len(acted), len(rembs), min(gaps))
    # two in one datagram: the second is acted on at once or due to be, and then is
    await send_raw_rtcp(mallory.pc, remb_about(400_000) + remb_about(500_000))
    await eventually(lambda: 500_000 in rembs, what="the REMBs handled")
    last_acted, due = after[rembs.index(500_000)]
    assert last_acted == 500_000 or due, (last_acted, due)
    await eventually(lambda: 500_000 in acted, what="the last REMB acted on")


async def test_a_remb_that_lies_about_its_ssrcs_does_not_end_the_connection(
    join: Join, server: Any
) -> None:
    ada, bo, watch = await _room(join)
    mallory = await join("mallory", decode=False)
    await eventually(lambda: any(r.frames > 5 for r in mallory.of_kind("video")), timeout=20)
    # "REMB", 255 SSRCs announced, a bit rate, and no SSRC at all
    lying = _rtcp(206, 15, 4, b"\x00\x00\x00\x00" + b"REMB" + bytes([255]) + b"\xff\xff\xff")
    await watch.during(send_raw_rtcp(mallory.pc, lying))
    got = sum(r.frames for r in mallory.of_kind("video"))
    await eventually(lambda: sum(r.frames for r in mallory.of_kind("video")) > got + 10)
    peer = ServerParts(server.app).sfu.peer(ROOM, "mallory")
    assert peer is not None and peer.state == "connected"


async def test_a_simulcast_publisher_joining_a_room_where_someone_publishes_is_forwarded(
    join: Join, layer_frames: list[list[Encoded]]
) -> None:
    ada, bo, watch = await _room(join)
    mallory = await join("mallory", connect=False, video=[])
    publisher = SimulcastPublisher(mallory, layer_frames)
    try:
        await publisher.connect()
        await watch.during(eventually(lambda: _mallorys_video(bo) > 10, timeout=20))
    finally:
        await publisher.close()
