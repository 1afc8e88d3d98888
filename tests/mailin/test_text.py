"""What of a reply goes into the chat (quotes, attributions, signatures and HTML left out),
and reply addresses that round-trip any identity and refuse any change."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.errors import Forbidden, InvalidInput, NotFound
from server.mailin.addresses import ReplyAddresses
from server.mailin.replies import automatic, client_id
from server.mailin.text import html_to_text, reply_text, strip_quoted

SIG = "--\x20"


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        # Top-posted with a quoted original (Gmail, Apple Mail, Thunderbird).
        ("Yes!\n\nOn Fri, 1 Mar 2030 at 12:15, Pairwise wrote:\n> You have 1\n> unread", "Yes!"),
        # The attribution wrapped over two lines, the quote after a blank line.
        ("Yes!\n\nOn Fri, 1 Mar 2030 at 12:15, Pairwise <pw@\nexample.org> wrote:\n\n> Q", "Yes!"),
        # Bottom-posted and interleaved answers stay.
        ("On Fri, Ana wrote:\n> Chapter 3?\nDone.\n> Chapter 4?\nTomorrow.", "Done.\nTomorrow."),
        # An original that came unquoted after the attribution goes.
        ("Yes!\nOn Fri, 1 Mar 2030, Pairwise wrote:\nYou have 1 unread chat message", "Yes!"),
        ("Ja!\n\nAm 1. März 2030 um 12:15 schrieb Pairwise:\n> Hallo", "Ja!"),
        ("Oui\n\nLe ven. 1 mars 2030, Pairwise a écrit :\n> Bonjour", "Oui"),
        # Signatures.
        (f"Thanks\n{SIG}\nBen\nMentor, Example Ltd", "Thanks"),
        ("Thanks\n\nSent from my iPhone", "Thanks"),
        # Outlook quotes nothing; it rules a line above the original.
        ("OK\n\n-----Original Message-----\nFrom: Pairwise\nSent: Friday", "OK"),
        ("OK\n" + "_" * 32 + "\nFrom: Pairwise <pairwise@localhost>", "OK"),
        # What is not a quote stays, blank lines at most one in a row.
        (
            "First\n\n\n\nSecond\n  indented > not a quote",
            "First\n\nSecond\n  indented > not a quote",
        ),
        ("> all quote\n> nothing else", ""),
    ],
)
def test_only_the_answer_is_kept(text: str, answer: str) -> None:
    assert strip_quoted(text) == answer


def test_crlf_and_lone_cr_are_line_breaks() -> None:
    assert strip_quoted("One\r\n> two\rThree\r\n") == "One\nThree"


def test_html_is_made_plain_without_its_quoted_parts() -> None:
    html = (
        "<html><head><title>t</title><style>p{}</style></head><body>"
        "<p>Sounds&nbsp;good &lt;3</p><p>Line\n  two<br>three</p><script>x()</script>"
        '<div class="moz-cite-prefix">On Fri, Pairwise wrote:</div>'
        '<blockquote type="cite"><div><blockquote>nested</blockquote>still quoted</div>'
        "</blockquote>"
        '<div id="divRplyFwdMsg">From: Pairwise</div>'
        "<p>after</p></body></html>"
    )
    assert strip_quoted(html_to_text(html)) == "Sounds good <3\n\nLine two\nthree\n\nafter"


def _mail(text: str, subtype: str = "plain", **params: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "ben@example.org"
    message.set_content(text, subtype=subtype, params=params or None)
    return message


def test_the_plain_part_is_preferred_and_format_flowed_is_joined() -> None:
    message = _mail("Plain answer\n> quoted")
    message.add_alternative("<p>HTML answer</p>", subtype="html")
    assert reply_text(message) == "Plain answer"
    flowed = _mail(
        "A long line that the \nmail program wrapped.\n> quote \n> more", format="flowed"
    )
    assert reply_text(flowed) == "A long line that the mail program wrapped."
    assert reply_text(_mail("<b>Bold</b> move", subtype="html")) == "Bold move"


def test_a_reply_without_readable_text_is_refused() -> None:
    message = EmailMessage()
    message.set_content(b"\x89PNG", maintype="image", subtype="png")
    with pytest.raises(InvalidInput) as caught:
        reply_text(message)
    assert caught.value.code == "no_text"
    unknown = EmailMessage()
    unknown["Content-Type"] = 'text/plain; charset="x-no-such-charset"'
    unknown.set_payload(b"hello")
    with pytest.raises(InvalidInput):
        reply_text(unknown)


ADDRESSES = ReplyAddresses("k" * 32, "Reply.Example.org")
PAIR = "0123456789abcdef0123456789abcdef"


@given(st.text(min_size=1, max_size=200))
def test_any_identity_round_trips_in_any_case(identity: str) -> None:
    address = ADDRESSES.address(PAIR, identity)
    assert address == address.lower() and address.endswith("@reply.example.org")
    assert ADDRESSES.parse(address) == (PAIR, identity)
    assert ADDRESSES.parse(f"<{address.upper()}>") == (PAIR, identity)


@given(st.text(min_size=1, max_size=40), st.data())
def test_any_change_to_an_address_is_refused(identity: str, data: st.DataObject) -> None:
    address = ADDRESSES.address(PAIR, identity)
    local = address.split("@")[0]
    at = data.draw(st.integers(len("reply+"), len(local) - 1))
    swap = data.draw(st.sampled_from("0123456789abcdefghijklmnopqrstuvwxyz.+"))
    changed = local[:at] + swap + local[at + 1 :]
    if changed == local:
        return
    with pytest.raises((Forbidden, NotFound)):
        ADDRESSES.parse(changed + "@reply.example.org")


def test_the_longest_identity_round_trips() -> None:
    identity = "\U0001f600" * 200  # an identity column holds 200 characters, 4 bytes each
    assert ADDRESSES.parse(ADDRESSES.address(PAIR, identity)) == (PAIR, identity)


def test_another_servers_secret_signs_other_addresses() -> None:
    theirs = ReplyAddresses("z" * 32, "reply.example.org").address(PAIR, "ben")
    with pytest.raises(Forbidden) as caught:
        ADDRESSES.parse(theirs)
    assert caught.value.code == "forged"


_PARTS = st.sampled_from(
    [b"--b\r\n", b"--b--\r\n", b"Content-Type: text/html; charset=x-nope\r\n", b"\r\n",
     b"Content-Transfer-Encoding: base64\r\n", b"<blockquote>", b"> q\r\n", b"=ZZ", b"\xff"]
)  # fmt: skip


@given(
    st.sampled_from([b"Message-ID: <>", b"Message-ID: [", b"Auto-Submitted: \xff", b"X: y"]),
    st.sampled_from([b"text/plain", b"multipart/alternative; boundary=b", b"text/html"]),
    st.lists(st.one_of(_PARTS, st.binary(max_size=40)), max_size=8),
)
def test_broken_mail_is_read_or_refused_never_an_error(
    header: bytes, content_type: bytes, body: list[bytes]
) -> None:
    raw = header + b"\r\nContent-Type: " + content_type + b"\r\n\r\n" + b"".join(body)
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    automatic(message, "ben@example.org")
    assert client_id(message, raw).startswith("mail:")
    try:
        assert isinstance(reply_text(message), str)
    except InvalidInput as exc:
        assert exc.code == "no_text"
