"""The C `Stream` and `fan_out` (server/media/_rtp_send.c) against input Python could
hand them and the Python they run mid-send (each found by a review of the first version,
each failing on it):

1. A NACK history list emptied from Python is refused at the next send (it was `seq % 0`:
   SIGFPE, the process died).
2. A wire dropped by Python while it sends (asyncio's `sendto` runs Python) stays alive
   until the send is over (it was freed mid-call: a crash under PYTHONMALLOC=debug).
3. A payload too long for any stream's header is refused before the frame goes to any
   stream (it was checked per stream, against that stream's own header: the first got it,
   then the call raised).
4. A leveled extension block without its 0xBEDE header is refused when the stream is made
   (its frames with a level carried a bare level element where the header should be).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pylibsrtp
import pytest

from server.media import _rtp_send
from server.media.aiortc_internals.transport import make_wire
from server.media.rtp_output import Packetized, ntp_now

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PRELUDE = textwrap.dedent(
    """
    import gc
    from types import SimpleNamespace
    import pylibsrtp
    from server.media import _rtp_send
    from server.media.aiortc_internals.transport import make_wire
    from server.media.rtp_output import Packetized, ntp_now

    def session():
        policy = pylibsrtp.Policy(key=bytes(range(30)),
                                  ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        policy.allow_repeat_tx = True
        return pylibsrtp.Session(policy)

    def stream(history):
        return _rtp_send.Stream(history, 1234, 96, 100, 0, (b"", False, b""),
                                (b"", False, b""), 0, 256)
    """
)


def run(body: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def session() -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(key=bytes(range(30)), ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    policy.allow_repeat_tx = True
    return pylibsrtp.Session(policy)


def test_an_emptied_history_is_refused_not_a_division_by_zero() -> None:
    result = run(
        """
        history = [None] * 16
        s = stream(history)
        s.wire = make_wire(session(), None, ("127.0.0.1", 9), lambda d, a: None)
        assert s.send(Packetized([b"x" * 10], 0, ntp_now()))
        history.clear()
        try:
            s.send(Packetized([b"x" * 10], 0, ntp_now()))
        except (ValueError, TypeError):
            print("refused")
        """
    )
    assert result.returncode == 0, f"died: {result.returncode} {result.stderr[-500:]}"
    assert "refused" in result.stdout


def test_a_wire_dropped_by_python_during_its_own_send_is_not_used_after_free() -> None:
    result = run(
        """
        s = stream([None] * 16)
        def sendto(datagram, remote):
            s.wire = None  # the stream's reference was the only one
            gc.collect()
        wire = make_wire(session(), None, ("127.0.0.1", 9), sendto)
        wire.count_to(
            SimpleNamespace(_RTCRtpSender__packet_count=0, _RTCRtpSender__octet_count=0,
                            _RTCRtpSender__rtp_timestamp=0, _RTCRtpSender__ntp_timestamp=0),
            SimpleNamespace(_RTCDtlsTransport__tx_packets=0, _RTCDtlsTransport__tx_bytes=0),
        )
        s.wire = wire
        del wire
        print(_rtp_send.fan_out([s], Packetized([b"x" * 10, b"y" * 10], 0, ntp_now())))
        """,
        PYTHONMALLOC="debug",
    )
    assert result.returncode == 0, f"died: {result.returncode} {result.stderr[-500:]}"


def test_a_payload_too_long_for_one_streams_header_sends_nothing_to_anyone() -> None:
    sent: list[list[bytes]] = [[], []]
    bare = _rtp_send.Stream([None] * 16, 1, 96, 0, 0, (b"", False, b""), (b"", False, b""), 0, 9)
    # mid "7" (id 4) + abs-send-time (id 2): a 12-byte extension block
    block = (b"\xbe\xde\x00\x02\x407\x22", True, b"\x00\x00")
    extended = _rtp_send.Stream([None] * 16, 2, 96, 0, 0, block, block, 0, 9)
    for index, stream in enumerate((bare, extended)):
        stream.wire = make_wire(
            session(), None, ("127.0.0.1", 9), lambda d, a, into=sent[index]: into.append(d)
        )
    before = [(s.seq, s.packets, s.frames) for s in (bare, extended)]
    # fits 1800 - 144 - 4 - 8 for the bare stream, not 1800 - 144 - 4 - 20
    frame = Packetized([b"x" * 1640], 0, ntp_now())
    with pytest.raises(ValueError):
        _rtp_send.fan_out([bare, extended], frame)
    assert [(s.seq, s.packets, s.frames) for s in (bare, extended)] == before
    assert sent == [[], []], "bad input went to the first stream"


def test_a_leveled_block_without_its_header_is_refused() -> None:
    with pytest.raises(ValueError):
        _rtp_send.Stream([None] * 16, 1, 111, 0, 0, (b"", False, b""), (b"", False, b""), 5, 9)
