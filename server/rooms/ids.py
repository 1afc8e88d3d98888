"""What a room name and a participant identity may look like, wherever one comes in (join
tokens, PINs, a pair's members, erasure requests): one letter or digit first, then a
short run of URL- and log-safe characters."""

from __future__ import annotations

ROOM_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
IDENTITY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@+\-]{0,199}$"
