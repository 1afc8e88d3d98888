"""The words a person wrote in a reply, without the email they were answering.

A reply carries the whole digest again below (or, in interleaved replies, between) the
answer, and often a signature; only the answer belongs in the chat. The text/plain part is
preferred (every mail program sends one beside its HTML); an HTML-only reply is made plain
first, leaving out what mail programs mark as the quoted original (`blockquote`, Gmail's
`gmail_quote`, Thunderbird's `moz-cite-prefix`, Outlook's reply header).

Then, line by line: `>` lines are quotes; an attribution line ("On ... wrote:", also when
the mail program wrapped it over two or three lines) is dropped, and when no `>` lines
follow it the original came unquoted, so the rest goes; Outlook's "-----Original
Message-----" or its underscore rule ends the answer; "-- " starts the signature, and a
last line "Sent from my ..." is one too.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from html.parser import HTMLParser

from server.errors import InvalidInput

# English, German, French, Spanish, Italian, Dutch, Portuguese.
_ATTRIBUTION = re.compile(
    r"^(on|am|le|el|il|op|em)\s.*\b(wrote|schrieb|a écrit|escribió|ha scritto|schreef|escreveu)"
    r"\b.*:$",  # "... schrieb Pairwise:": the name may come after the verb
    re.IGNORECASE,
)
# Longer than this is no attribution; the limit also keeps _ATTRIBUTION, whose time grows
# with the square of what it reads, from spending seconds on one long line.
ATTRIBUTION_MAX_CHARS = 400
_ORIGINAL = re.compile(r"^(-{2,}\s*original message\s*-{2,}|_{20,})$", re.IGNORECASE)
_SENT_FROM = re.compile(r"^(sent from my |get outlook for )", re.IGNORECASE)


def reply_text(message: EmailMessage) -> str:
    """The reply's own text; InvalidInput (`no_text`) when it has none to read."""
    try:
        body = message.get_body(preferencelist=("plain", "html"))
        content = body.get_content() if body is not None else None
    except Exception:  # the email package raises many kinds of error on broken mail
        raise InvalidInput("the reply's text cannot be read", code="no_text") from None
    if body is None or not isinstance(content, str):
        raise InvalidInput("the reply has no text part", code="no_text")
    if body.get_content_subtype() == "html":
        content = html_to_text(content)
    elif str(body.get_param("format", "")).lower() == "flowed":
        content = unflow(content, str(body.get_param("delsp", "")).lower() == "yes")
    return strip_quoted(content)


def unflow(text: str, delsp: bool) -> str:
    """format=flowed (RFC 3676): a line ending in a space goes on in the next one."""
    out: list[str] = []
    carry = ""
    for line in text.splitlines():
        if line != "-- " and line.endswith(" ") and not line.startswith(">"):
            carry += line[:-1] if delsp else line
            continue
        out.append(carry + line)
        carry = ""
    if carry:
        out.append(carry)
    return "\n".join(out)


def strip_quoted(text: str) -> str:
    """`text` without quoted lines, attribution, forwarded original and signature."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        bare = line.strip()
        if line == "--" or _ORIGINAL.match(bare):  # "-- " (right-stripped): a signature
            break
        wrapped = _attribution_at(lines, i)
        if wrapped:
            rest = [x.strip() for x in lines[i + wrapped :] if x.strip()]
            if rest and not rest[0].startswith(">"):
                break  # the original follows unquoted: nothing of the answer after this
            i += wrapped
            continue
        if not bare.startswith(">"):
            kept.append(line)
        i += 1
    while kept and (not kept[-1].strip() or _SENT_FROM.match(kept[-1].strip())):
        kept.pop()
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def _attribution_at(lines: list[str], i: int) -> int:
    """How many lines the attribution starting at line `i` spans (0: none starts there)."""
    joined = ""
    for span in range(1, 4):
        if i + span > len(lines):
            break
        part = lines[i + span - 1].strip()
        if not part or part.startswith(">"):
            break
        joined = f"{joined} {part}".strip()
        if len(joined) > ATTRIBUTION_MAX_CHARS:
            break
        if _ATTRIBUTION.match(joined):
            return span
    return 0


_BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table"}
_SKIPPED = {"head", "script", "style", "title", "blockquote"}
_QUOTE_MARKS = {"gmail_quote", "gmail_attr", "moz-cite-prefix", "divrplyfwdmsg", "appendonsend"}
_VOID = {"br", "img", "hr", "meta", "link", "input", "wbr", "col", "area", "base", "source"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip: str | None = None  # the tag whose content is being left out
        self._depth = 0  # nested tags of that name inside it

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip is not None:
            if tag == self._skip:
                self._depth += 1
            return
        marks = {
            word.lower()
            for name, value in attrs
            if name in ("class", "id") and value
            for word in value.split()
        }
        if tag not in _VOID and (tag in _SKIPPED or marks & _QUOTE_MARKS):
            self._skip, self._depth = tag, 1
            return
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self._skip is not None:
            if tag == self._skip:
                self._depth -= 1
                if self._depth == 0:
                    self._skip = None
            return
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip is None:
            self.parts.append(re.sub(r"[ \t\r\n\f]+", " ", data))


def html_to_text(html: str) -> str:
    """The text a reader sees in an HTML reply, less its quoted original."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = "".join(parser.parts).replace("\xa0", " ").split("\n")
    return "\n".join(line.strip() for line in lines)
