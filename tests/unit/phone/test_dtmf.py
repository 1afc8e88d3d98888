from server.phone.dtmf import DtmfReceiver, TelephoneEvent


def press(event: int, end: bool, duration: int = 800) -> bytes:
    return TelephoneEvent(event, end, 10, duration).serialise()


def test_a_press_with_three_end_packets_is_one_digit() -> None:
    receiver = DtmfReceiver()
    got = [
        receiver.feed(1000, press(5, False, 160)),
        receiver.feed(1000, press(5, False, 320)),
        receiver.feed(1000, press(5, True)),
        receiver.feed(1000, press(5, True)),
        receiver.feed(1000, press(5, True)),
    ]
    assert "".join(got) == "5"


def test_the_same_key_pressed_twice_is_two_digits() -> None:
    receiver = DtmfReceiver()
    digits = ""
    for timestamp in (1000, 2600):
        for end in (False, True, True, True):
            digits += receiver.feed(timestamp, press(1, end))
    assert digits == "11"


def test_a_press_whose_end_packets_were_all_lost_still_counts() -> None:
    receiver = DtmfReceiver()
    digits = receiver.feed(1000, press(2, False)) + receiver.feed(1000, press(2, False))
    digits += receiver.feed(2600, press(11, False)) + receiver.feed(2600, press(11, True))
    assert digits == "2#"


def test_late_repeats_of_an_old_end_packet_are_ignored() -> None:
    receiver = DtmfReceiver()
    digits = receiver.feed(1000, press(3, True)) + receiver.feed(1000, press(3, True))
    assert digits == "3"


def test_garbage_payloads_are_ignored() -> None:
    receiver = DtmfReceiver()
    assert receiver.feed(1, b"") == "" and receiver.feed(1, b"\x01") == ""
    assert receiver.feed(2, bytes([200, 0x80, 0, 1])) == ""  # not a DTMF event


def test_round_trip() -> None:
    event = TelephoneEvent(11, True, 10, 960)
    assert TelephoneEvent.parse(event.serialise()) == event
    assert event.digit == "#"
