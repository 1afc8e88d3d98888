"""SIP messages (RFC 3261): parse one UDP datagram, build responses and requests.

Parsing is strict about framing and lenient about content: anything that cannot be a
SIP message raises `SipParseError` (the gateway logs and drops it), never another
exception.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

MAX_DATAGRAM = 65_535

# RFC 3261 §7.3.3 compact header forms.
COMPACT = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
}

REASONS = {
    100: "Trying",
    180: "Ringing",
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    415: "Unsupported Media Type",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    503: "Service Unavailable",
}

_REQUEST_LINE = re.compile(r"^([A-Z]{2,16}) (\S+) SIP/2\.0$")
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6]\d\d) ?(.*)$")
_URI_USER = re.compile(r"^(?:sips?|tel):(?:([^@;?]+)@)?", re.IGNORECASE)


class SipParseError(ValueError):
    """The datagram is not a well-formed SIP message."""


@dataclass
class SipMessage:
    """A request (`method`, `uri`) or a response (`status`, `reason`)."""

    method: str = ""
    uri: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return self.status == 0

    def get(self, name: str, default: str = "") -> str:
        """The first header called `name` (case-insensitive, compact forms too)."""
        wanted = _canonical(name)
        for key, value in self.headers:
            if _canonical(key) == wanted:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        wanted = _canonical(name)
        return [value for key, value in self.headers if _canonical(key) == wanted]

    def set(self, name: str, value: str) -> None:
        wanted = _canonical(name)
        self.headers = [(k, v) for k, v in self.headers if _canonical(k) != wanted]
        self.headers.append((name, value))

    @property
    def call_id(self) -> str:
        return self.get("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = self.get("CSeq").partition(" ")
        return int(number), method.strip()

    @property
    def branch(self) -> str:
        return header_param(self.get("Via"), "branch") or ""

    def serialise(self) -> bytes:
        first = (
            f"{self.method} {self.uri} SIP/2.0"
            if self.is_request
            else f"SIP/2.0 {self.status} {self.reason}"
        )
        lines = [first]
        lines += [
            f"{name}: {value}"
            for name, value in self.headers
            if _canonical(name) != "content-length"
        ]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def _canonical(name: str) -> str:
    lowered = name.strip().lower()
    return COMPACT.get(lowered, lowered)


def parse(data: bytes) -> SipMessage:
    """Parse one datagram; `SipParseError` for anything that is not a complete message."""
    if not data or len(data) > MAX_DATAGRAM:
        raise SipParseError("empty or oversized datagram")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise SipParseError("no end of headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("headers are not UTF-8") from None
    lines = text.split("\r\n")
    message = _first_line(lines[0])
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and message.headers:  # folded continuation line
            name, value = message.headers[-1]
            message.headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or " " in name.strip():
            raise SipParseError(f"malformed header line {line[:40]!r}")
        message.headers.append((name.strip(), value.strip()))
    for required in ("Via", "From", "To", "Call-ID", "CSeq"):
        if not message.get(required):
            raise SipParseError(f"missing {required}")
    try:
        number, method = message.cseq
    except ValueError:
        raise SipParseError("malformed CSeq") from None
    if number < 0 or not method:
        raise SipParseError("malformed CSeq")
    length_text = message.get("Content-Length")
    if length_text:
        if not length_text.isdigit():
            raise SipParseError("malformed Content-Length")
        length = int(length_text)
        if length > len(body):
            raise SipParseError("truncated body")
        body = body[:length]
    message.body = body
    return message


def _first_line(line: str) -> SipMessage:
    request = _REQUEST_LINE.match(line)
    if request:
        return SipMessage(method=request.group(1), uri=request.group(2))
    status = _STATUS_LINE.match(line)
    if status:
        return SipMessage(status=int(status.group(1)), reason=status.group(2))
    raise SipParseError(f"not a SIP start line: {line[:40]!r}")


def header_param(value: str, name: str) -> str | None:
    """A `;name=value` parameter of a header, outside any <...> URI."""
    outside = value.rsplit(">", 1)[-1]
    for part in outside.split(";")[1:]:
        key, _, val = part.partition("=")
        if key.strip().lower() == name:
            return val.strip()
    return None


def uri_user(uri: str) -> str:
    """The user part of a SIP URI (`sip:1234@host` → `1234`), or ''."""
    found = _URI_USER.match(uri.strip().lstrip("<"))
    return found.group(1) if found and found.group(1) else ""


ANONYMOUS = {"", "anonymous", "unknown", "restricted", "unavailable", "private"}


def display_name(header: str) -> str:
    """The display name of a From/To header (`"Maya Lopez" <sip:…>` → `Maya Lopez`), or
    '' when there is none or it only says the caller is anonymous."""
    if "<" not in header:
        return ""
    name = header.split("<", 1)[0].strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    name = "".join(ch for ch in name if ch.isprintable()).strip()[:60]
    return "" if name.lower() in ANONYMOUS else name


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def response(
    request: SipMessage,
    status: int,
    *,
    to_tag: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> SipMessage:
    """A response to `request` (RFC 3261 §8.2.6): Via, From, Call-ID, CSeq copied,
    our tag added to To unless it has one."""
    copied = [("Via", via) for via in request.get_all("Via")]
    to = request.get("To")
    if to_tag and header_param(to, "tag") is None:
        to = f"{to};tag={to_tag}"
    copied += [
        ("From", request.get("From")),
        ("To", to),
        ("Call-ID", request.call_id),
        ("CSeq", request.get("CSeq")),
    ]
    return SipMessage(
        status=status,
        reason=REASONS.get(status, "Unknown"),
        headers=copied + (headers or []),
        body=body,
    )
