"""The layer choice and the simulcast SDP, as pure functions (microseconds each)."""

from __future__ import annotations

from server.media.simulcast import SimulcastSection, annotate, parse_offer
from server.media.simulcast_choice import Choice, Estimate, LayerState, ceiling, choose

LAYERS = [
    LayerState(100_000, 180, True),
    LayerState(400_000, 360, True),
    LayerState(1_200_000, 720, True),
]


def test_starts_low_and_a_flat_low_estimate_keeps_it_low() -> None:
    choice = Choice()
    assert choose(choice, LAYERS, None, 0.0, None, 0.0) == 0
    for t in range(1, 20):
        assert choose(choice, LAYERS, 80_000, 0.0, None, float(t)) == 0


def test_a_rising_estimate_climbs_one_layer_per_hold() -> None:
    choice = Choice()
    choose(choice, LAYERS, None, 0.0, None, 0.0)
    assert choose(choice, LAYERS, 150_000, 0.0, None, 1.0, rising=True) == 0  # hold: 2 s
    # within the ramp's reach (1.5x) of the next layer with its headroom (480 kbit/s)
    assert choose(choice, LAYERS, 320_000, 0.0, None, 2.0, rising=True) == 1
    assert choose(choice, LAYERS, 600_000, 0.0, None, 3.0, rising=True) == 1
    assert choose(choice, LAYERS, 960_000, 0.0, None, 4.0, rising=True) == 2


def test_a_rising_estimate_far_below_the_next_layer_probes_rather_than_climbs() -> None:
    """A CI run's numbers: bo under a 300 kbit/s cap, on the lowest of ada's layers, its
    estimate back up from a dip (rising, but under even the layer it gets)."""
    layers = [
        LayerState(150_000, 135, True),
        LayerState(370_000, 270, True),
        LayerState(880_000, 540, True),
    ]
    choice = Choice()
    choose(choice, layers, 127_000, 0.0, None, 0.0)
    for t, estimate in ((2.0, 124_000), (2.5, 125_000), (3.0, 127_000)):
        assert choose(choice, layers, estimate, 0.0, None, t, rising=True) == 0
    assert choice.probe_rate == 370_000 * 1.2 - 150_000  # what would show the room


def test_loss_or_a_settled_low_estimate_steps_down_at_once_and_a_failed_climb_waits_longer() -> (
    None
):
    choice = Choice(target=2)
    assert choose(choice, LAYERS, 5_000_000, 0.12, None, 10.0) == 1  # 12 % loss
    choice = Choice(target=2)
    assert choose(choice, LAYERS, 300_000, 0.0, None, 10.0) == 0  # carries only the lowest
    choice = Choice(target=0)
    assert choose(choice, LAYERS, 600_000, 0.0, None, 10.0) == 1  # carries the next: up
    assert choose(choice, LAYERS, 200_000, 0.0, None, 11.0) == 0  # down again soon after
    assert choice.hold == 4.0
    assert choose(choice, LAYERS, 600_000, 0.0, None, 14.0) == 0  # not yet: 4 s hold
    assert choose(choice, LAYERS, 600_000, 0.0, None, 15.0) == 1


def test_never_above_the_tile_and_a_hidden_tile_gets_the_lowest() -> None:
    assert ceiling(LAYERS, 210) == 1  # 180 is too short for it, 360 is not
    assert ceiling(LAYERS, 170) == 0  # 180 is tall enough
    assert ceiling(LAYERS, 1080) == 2
    assert ceiling(LAYERS, 0) == 0
    choice = Choice(target=2)
    assert choose(choice, LAYERS, 5_000_000, 0.0, 300, 0.0) == 1


def test_a_layer_that_stops_is_left() -> None:
    stopped = [LAYERS[0], LAYERS[1], LayerState(1_200_000, 720, False)]
    choice = Choice(target=2)
    assert choose(choice, stopped, 5_000_000, 0.0, None, 0.0) == 1


def test_the_estimate_trend() -> None:
    estimate = Estimate()
    estimate.observe(100_000, 0.0)
    estimate.observe(106_000, 1.0)
    assert estimate.rising
    estimate.observe(106_000, 2.0)
    assert not estimate.rising
    assert estimate.value == 106_000


CHROME_OFFER = "\r\n".join(
    [
        "v=0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=mid:0",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "a=mid:1",
        "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
        "a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
        "a=rid:q send",
        "a=rid:h send",
        "a=rid:f send",
        "a=simulcast:send q;h;~f",
        "",
    ]
)


def test_the_offer_is_read_and_the_answer_receives_the_layers() -> None:
    sections = parse_offer(CHROME_OFFER)
    assert list(sections) == ["1"]
    assert sections["1"].rids == ["q", "h"]  # "~f" is paused: not offered
    answer = "v=0\r\nm=audio 9 X 111\r\na=mid:0\r\nm=video 9 X 96\r\na=mid:1\r\na=recvonly\r\n"
    lines = annotate(answer, sections).split("\r\n")
    video = lines[lines.index("m=video 9 X 96") :]
    assert "a=rid:q recv" in video and "a=rid:h recv" in video
    assert "a=simulcast:recv q;h" in video
    assert "a=simulcast:recv q;h" not in lines[: lines.index("m=video 9 X 96")]


def test_legacy_sim_groups_are_layers_too() -> None:
    offer = "v=0\r\nm=video 9 X 96\r\na=mid:0\r\na=ssrc-group:SIM 1 2 3\r\na=ssrc-group:FID 1 4\r\n"
    section = parse_offer(offer)["0"]
    assert section == SimulcastSection("0", [], [1, 2, 3], {4: 1}, {})


def test_remb_closer_than_the_fold_replaces_the_newest_entry() -> None:
    estimate = Estimate()
    for i in range(1000):  # a flood: 1,000 REMBs a second for 3 s
        estimate.observe(100_000 + i, i / 1000)
    assert estimate.value == 100_999  # the newest value always counts
    assert len(estimate.history) <= Estimate.WINDOW / Estimate.FOLD + 2
    estimate.observe(50_000, 10.0)  # one after a gap: a new entry, the old ones gone
    assert estimate.history == [(10.0, 50_000)]


def _settled_on_the_lowest() -> Choice:
    """Sent the lowest layer for a while, on an estimate (300 kbit/s) that does not
    carry the next (400 kbit/s with 20 % to spare) and is not rising."""
    choice = Choice()
    choose(choice, LAYERS, 300_000, 0.0, None, 0.0)
    assert choice.target == 0 and not choice.probe_rate
    return choice


def test_a_settled_estimate_below_the_next_layer_is_probed_and_climbs_when_it_rises() -> None:
    choice = _settled_on_the_lowest()
    assert choose(choice, LAYERS, 300_000, 0.0, None, 1.0) == 0
    assert not choice.probe_rate  # the hold (2 s) first
    assert choose(choice, LAYERS, 300_000, 0.0, None, 2.0) == 0
    # the padding brings what it receives to the next layer's rate with the headroom
    assert choice.probe_rate == 400_000 * 1.2 - 100_000
    assert choice.padding(2.5) == choice.probe_rate
    # rising, but not yet 5 % above where the probe found it: no climb yet
    assert choose(choice, LAYERS, 309_000, 0.0, None, 3.0, rising=True) == 0
    assert choice.probe_rate
    assert choose(choice, LAYERS, 316_000, 0.0, None, 3.5, rising=True) == 1
    assert not choice.probe_rate and choice.padding(3.6) == 0.0
    assert choice.hold == 2.0


def test_an_estimate_reaching_the_next_layer_during_a_probe_climbs() -> None:
    choice = _settled_on_the_lowest()
    choose(choice, LAYERS, 300_000, 0.0, None, 2.0)
    assert choice.probe_rate
    assert choose(choice, LAYERS, 480_000, 0.0, None, 3.0) == 1
    assert not choice.probe_rate


def test_a_probe_that_moves_nothing_stops_and_the_next_waits_a_hold() -> None:
    choice = _settled_on_the_lowest()
    choose(choice, LAYERS, 300_000, 0.0, None, 2.0)
    for t in (3.0, 4.0, 5.9):
        assert choose(choice, LAYERS, 300_000, 0.0, None, t) == 0
        assert choice.probe_rate
    assert choice.padding(6.1) == 0.0  # over even before the next observation
    assert choose(choice, LAYERS, 300_000, 0.0, None, 6.1) == 0
    assert not choice.probe_rate and choice.hold == 2.0
    assert choose(choice, LAYERS, 300_000, 0.0, None, 8.0) == 0
    assert not choice.probe_rate  # a hold from the end of that probe
    assert choose(choice, LAYERS, 300_000, 0.0, None, 8.2) == 0
    assert choice.probe_rate  # the next probe


def test_a_falling_estimate_or_loss_ends_a_probe_at_once() -> None:
    choice = _settled_on_the_lowest()
    choose(choice, LAYERS, 300_000, 0.0, None, 2.0)
    assert choose(choice, LAYERS, 280_000, 0.0, None, 2.5) == 0  # overuse: 7 % down
    assert not choice.probe_rate and choice.hold == 4.0
    choice = _settled_on_the_lowest()
    choose(choice, LAYERS, 300_000, 0.0, None, 2.0)
    assert choose(choice, LAYERS, 300_000, 0.03, None, 2.5) == 0  # 3 % loss
    assert not choice.probe_rate and choice.hold == 4.0


def test_no_probe_where_no_climb_is_wanted() -> None:
    at_the_top = Choice(target=2)
    choose(at_the_top, LAYERS, 1_300_000, 0.0, None, 10.0)
    assert not at_the_top.probe_rate
    small_tile = _settled_on_the_lowest()
    choose(small_tile, LAYERS, 300_000, 0.0, 150, 5.0)  # the lowest fills a 150-line tile
    assert not small_tile.probe_rate
    lossy = _settled_on_the_lowest()
    choose(lossy, LAYERS, 300_000, 0.05, None, 5.0)
    assert not lossy.probe_rate


def test_a_climb_that_holds_puts_the_hold_back() -> None:
    choice = Choice(target=0)
    choose(choice, LAYERS, 600_000, 0.0, None, 10.0)
    choose(choice, LAYERS, 200_000, 0.0, None, 11.0)  # a failed climb: 4 s hold
    assert choice.hold == 4.0
    assert choose(choice, LAYERS, 600_000, 0.0, None, 15.0) == 1
    assert choose(choice, LAYERS, 600_000, 0.0, None, 22.0) == 1
    assert choice.hold == 4.0  # 7 s: not yet twice the hold
    choose(choice, LAYERS, 600_000, 0.0, None, 23.0)
    assert choice.hold == 2.0


def test_an_estimate_rising_past_where_it_settled_after_a_failed_climb_ends_the_hold() -> None:
    choice = Choice(target=0, hold=4.0)
    choose(choice, LAYERS, 600_000, 0.0, None, 10.0)  # up
    choose(choice, LAYERS, 200_000, 0.0, None, 11.0)  # down soon after: 8 s hold
    assert choice.hold == 8.0
    for t, estimate in ((12.0, 150_000), (13.0, 170_000), (14.0, 140_000), (15.0, 175_000)):
        choose(choice, LAYERS, estimate, 0.0, None, t)  # a cap: settled, with a dip
        assert choice.hold == 8.0 and not choice.probe_rate
    choose(choice, LAYERS, 215_000, 0.0, None, 16.0)  # 1.2x where it settled: lifted
    assert choice.hold == 2.0
    assert choice.probe_rate  # and probing for the next layer at once


def test_after_a_failed_probe_the_hold_runs_its_course() -> None:
    choice = _settled_on_the_lowest()
    choose(choice, LAYERS, 300_000, 0.0, None, 2.0)
    choose(choice, LAYERS, 280_000, 0.0, None, 2.5)  # overuse: failed
    assert choice.hold == 4.0
    choose(choice, LAYERS, 400_000, 0.0, None, 3.0)  # settles above where it was
    assert choice.hold == 4.0 and not choice.probe_rate


def test_a_climb_a_probe_showed_room_for_forgets_earlier_failures() -> None:
    choice = _settled_on_the_lowest()
    choice.hold = 8.0  # after failed probes
    choose(choice, LAYERS, 300_000, 0.0, None, 8.0)
    assert choice.probe_rate
    assert choose(choice, LAYERS, 320_000, 0.0, None, 9.0, rising=True) == 1
    assert choice.hold == 2.0


def test_a_step_down_for_congestion_stops_the_current_layer_and_a_smaller_tile_does_not() -> None:
    choice = Choice(target=2)
    assert choose(choice, LAYERS, 300_000, 0.0, None, 10.0) == 0
    assert choice.stepping_down
    assert choose(choice, LAYERS, 300_000, 0.0, None, 11.0) == 0
    assert choice.stepping_down  # until another change
    resized = Choice(target=2)
    assert choose(resized, LAYERS, 5_000_000, 0.0, 300, 10.0) == 1
    assert not resized.stepping_down  # the current layer goes on until the keyframe
    climbing = Choice(target=0)
    assert choose(climbing, LAYERS, 600_000, 0.0, None, 10.0) == 1
    assert not climbing.stepping_down
