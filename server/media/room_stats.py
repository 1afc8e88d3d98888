"""What the SFU sees of each participant's media in one room, as plain data.

Read where the SFU runs (the main process, or the room's media worker) and carried to
`GET /api/v1/rooms/{room}/stats` (api.py), which adds what the room registry knows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.media.sfu import RoomMedia


def participant_media(media: RoomMedia, identity: str) -> dict[str, Any]:
    """One participant's connection, forwarded tracks and publications."""
    peer = media.peers.get(identity)
    controls = media.controls.get(identity)
    quality = peer.quality if peer is not None else None
    outgoing = list(peer.outgoing.values()) if peer is not None else []
    return {
        "connection_state": peer.state if peer is not None else "none",
        "inbound_kbps": round(quality.inbound_kbps, 1) if quality else 0.0,
        "outbound_kbps": round(quality.outbound_kbps, 1) if quality else 0.0,
        "packets_in": quality.packets_in if quality else 0,
        "packets_out": quality.packets_out if quality else 0,
        "bytes_in": quality.bytes_in if quality else 0,
        "bytes_out": quality.bytes_out if quality else 0,
        "loss_percent": round(quality.loss_percent, 2) if quality else 0.0,
        "rtt_ms": round(quality.rtt_ms, 1) if quality and quality.rtt_ms is not None else None,
        "forwarded_streams": sum(1 for o in outgoing if o.negotiated),
        "transcoded_streams": sum(1 for o in outgoing if o.track.transcoder is not None),
        "receive_video": controls.receive_video if controls is not None else True,
        "published": [
            {
                "kind": p.kind,
                "codec": p.codec.mimeType if p.codec else None,
                "paused": p.paused,
                "frames": p.frames,
                "keyframes": p.keyframes,
                "bytes": p.bytes,
                "subscribers": len(p.subscribers),
            }
            for p in media.publications_of(identity)
        ],
    }


def room_media(media: RoomMedia | None, identities: list[str]) -> dict[str, dict[str, Any]] | None:
    """`participant_media` of `identities` and of everyone connected; None without media."""
    if media is None:
        return None
    everyone = identities + [who for who in media.peers if who not in identities]
    return {identity: participant_media(media, identity) for identity in everyone}
