"""Text that goes into mail headers and calendar lines: no control characters.

A title with a CR or LF in it would end a header line and start another of the sender's
choosing (`Subject: x\r\nBcc: ...`), or start a new iCalendar property. Titles are refused
at the door; names already stored elsewhere are made safe where they are written out.
"""

from __future__ import annotations

import unicodedata

from server.errors import InvalidInput

# Line and paragraph separators end a line for some readers too.
_BREAKS = {"\u2028", "\u2029", "\u0085"}


def has_control(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" or c in _BREAKS for c in text)


def require_plain(text: str, what: str) -> str:
    """`text` if it has no control characters; otherwise a 422 naming `what`."""
    if has_control(text):
        raise InvalidInput(
            f"the {what} contains a control character (a line break, tab or similar)",
            code="control_character",
        )
    return text


def plain(text: str) -> str:
    """`text` with each control character replaced by a space."""
    return "".join(" " if unicodedata.category(c) == "Cc" or c in _BREAKS else c for c in text)
