"""Profile import: CSV and JSON, row-level errors, all or nothing."""

from __future__ import annotations

import pytest

from server.errors import InvalidInput
from server.matching.profiles import (
    ProfileImportError,
    Window,
    import_profiles,
    parse_availability,
    parse_csv,
    parse_json_rows,
)

CSV = """identity,name,role,timezone,availability,languages,skills,capacity,avoid
ada,Ada,mentor,Europe/London,Mon 09:00-12:00; Wed 18:00-20:00,en;fr,Python;SQL,3,bob
bob,Bob,mentee,America/New_York,Tue 07:00-09:00,en,python,,
"""


def test_csv_import() -> None:
    result = import_profiles(parse_csv(CSV))
    ada, bob = result.profiles
    assert ada.role == "mentor" and ada.capacity == 3 and ada.avoid == {"bob"}
    assert ada.availability == (Window(0, 540, 720), Window(2, 1080, 1200))
    assert ada.skills == {"python", "sql"} and ada.languages == {"en", "fr"}
    assert bob.role == "mentee" and bob.capacity == 1 and bob.skills == {"python"}
    assert result.errors == []


def test_row_errors_name_the_row_and_import_nothing() -> None:
    bad = CSV + "cy,Cy,mentee,Europe/Pariss,,,,,\ndee,Dee,mentor,UTC,,,,-2,\n"
    with pytest.raises(ProfileImportError) as caught:
        import_profiles(parse_csv(bad))
    assert caught.value.errors == [
        "row 4: unknown time zone 'Europe/Pariss'",
        "row 5: capacity must be a whole number ≥ 0, got '-2'",
    ]
    assert "nothing imported" in caught.value.message


def test_allow_partial_keeps_the_good_rows() -> None:
    bad = CSV + "cy,Cy,mentee,Europe/Pariss,,,,,\n"
    result = import_profiles(parse_csv(bad), allow_partial=True)
    assert [p.identity for p in result.profiles] == ["ada", "bob"]
    assert result.errors == ["row 4: unknown time zone 'Europe/Pariss'"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no header row"),
        ("identity,name,timezone\na,A,UTC,extra\n", "row 2: 4 values but the header has 3"),
        ('identity,timezone\n"a,UTC\n', "malformed CSV"),
        ("identity,tz\na,UTC\n", "unknown CSV column"),
        ("identity,name\na,A\n", "no 'timezone' column"),
    ],
)
def test_malformed_csv(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_csv(text)


def test_json_rows_and_role_of_a_file() -> None:
    rows = parse_json_rows([
        {"identity": "m1", "timezone": "Asia/Kolkata", "availability": ["Fri 22:00-01:00"]},
        {"identity": "m2", "timezone": "UTC", "role": "mentee"},
        {"identity": "m1", "timezone": "UTC"},
    ])  # fmt: skip
    with pytest.raises(ProfileImportError) as caught:
        import_profiles(rows, role="mentor")
    assert caught.value.errors == [
        "row 2: role 'mentee' in a list of mentors",
        "row 3: identity 'm1' already used on row 1",
    ]
    (m1,) = import_profiles(rows[:1], role="mentor").profiles
    # Past midnight continues on the next day.
    assert m1.availability == (Window(4, 1320, 1440), Window(5, 0, 60))


def test_json_must_be_a_list_of_objects() -> None:
    with pytest.raises(InvalidInput, match="JSON list"):
        parse_json_rows({"identity": "x"})
    with pytest.raises(InvalidInput, match="row 2: expected an object"):
        parse_json_rows([{"identity": "x"}, 3])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Monday 9-12", "not like"),
        ("Xyz 09:00-10:00", "unknown day"),
        ("Mon 09:00-25:00", "not a time of day"),
        ("Mon 09:05-09:10", "shorter than a quarter hour"),
    ],
)
def test_bad_availability(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_availability(value)


def test_availability_rounds_inwards_to_quarter_hours() -> None:
    assert parse_availability("tue 09:10-10:50") == (Window(1, 555, 645),)


@pytest.mark.parametrize("value", ["Mon 09:00-09:00", "Mon 00:00-00:00", "Sun 24:00-24:00"])
def test_a_window_that_ends_when_it_starts_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="starts and ends at the same time; a whole day is"):
        parse_availability(value)
    assert parse_availability("Mon 00:00-24:00") == (Window(0, 0, 1440),)


def test_identities_that_differ_only_in_case_are_one_person() -> None:
    rows = parse_csv("identity,role,timezone\nbx001,mentee,UTC\nBX001,mentee,UTC\n")
    with pytest.raises(ProfileImportError) as caught:
        import_profiles(rows)
    assert caught.value.errors == [
        "row 3: identity 'BX001' already used on row 2 as 'bx001' (identities ignore case)"
    ]
