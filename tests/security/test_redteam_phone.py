"""Red team against the phone gateway's dial-out ("call me"): what a member types as their
number reaches the trunk's Request-URI only as ASCII E.164. Python's `\\d` also matches
Arabic-Indic, Devanagari or full-width digits; those passed the check and went out to the
trunk as UTF-8 in the INVITE, where a trunk that folds them to ASCII dials a number nobody
checked and one that does not sees a malformed URI."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from server.config import Settings
from server.errors import InvalidInput
from server.phone.dialout import check_number
from tests.sip.conftest import PhoneFactory, make_phone  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.sip]

NOT_ASCII = (
    "+4930\u0661\u0662\u0663\u0664\u0665\u0666",  # Arabic-Indic
    "+4930\uff11\uff12\uff13\uff14\uff15\uff16",  # full-width
    "+4930\u0967\u0968\u0969\u096a\u096b\u096c",  # Devanagari
)


async def test_call_me_refuses_digits_that_are_not_ascii(
    make_phone: PhoneFactory,  # noqa: F811
) -> None:
    phone = await make_phone(trunk_uri="sip:127.0.0.1:9", dialout_prefixes=("+4930",))
    for number in NOT_ASCII:
        with pytest.raises(InvalidInput):
            await phone.gateway.call_me("r", "maya", "Maya", "mentee", number)
        with pytest.raises(InvalidInput):
            check_number(number, ("+",))
    # The way back: the same number in ASCII digits is dialled.
    assert await phone.gateway.call_me("r", "maya", "Maya", "mentee", "+4930123456") == "…456"


@pytest.mark.parametrize("prefix", ["", "+", "4930", "+49 30", "+0", "+44\n"])
def test_a_dial_out_prefix_that_opens_every_number_or_none_is_refused(prefix: str) -> None:
    """A careless setting: `[""]` or `["+"]` let "call me" dial any number (premium-rate
    ones too: toll fraud), `"4930"` or `"+49 30"` silently none. The server refuses to start."""
    with pytest.raises(ValidationError):
        Settings(sip_dialout_prefixes=[prefix])
    assert Settings(sip_dialout_prefixes=["+4930", "+44"]).sip_dialout_prefixes == ["+4930", "+44"]
