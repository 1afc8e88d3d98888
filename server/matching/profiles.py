"""Mentor and mentee profiles, and their import from CSV or JSON with row-level errors."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from server.errors import InvalidInput

Role = Literal["mentor", "mentee"]
ROLES: tuple[Role, ...] = ("mentor", "mentee")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_MINUTES = 24 * 60
MAX_ERRORS_SHOWN = 20

# Fields a criterion may compare, by the kind of rule that makes sense for them.
SET_FIELDS = ("languages", "skills", "goals", "tags")
TEXT_FIELDS = ("department", "organisation", "seniority", "timezone")
NUMBER_FIELDS = ("experience_years",)
LIST_FIELDS = (*SET_FIELDS, "avoid", "prefer", "availability")
COLUMNS = (
    "identity", "name", "role", "timezone", "availability", *SET_FIELDS, "seniority",
    "experience_years", "department", "organisation", "reports_to", "capacity", "avoid", "prefer",
)  # fmt: skip
REQUIRED = ("identity", "timezone")
_WINDOW = re.compile(r"^\s*([A-Za-z]{3})[a-z]*\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True, order=True)
class Window:
    """A weekly window in the person's local time: minutes from local midnight of `day`."""

    day: int  # 0 = Monday
    start: int
    end: int

    def __str__(self) -> str:
        return f"{DAYS[self.day].title()} {_hhmm(self.start)}-{_hhmm(self.end)}"


@dataclass(frozen=True)
class Profile:
    identity: str
    name: str
    role: Role
    timezone: str
    availability: tuple[Window, ...] = ()
    languages: frozenset[str] = frozenset()
    skills: frozenset[str] = frozenset()  # offered by a mentor, wanted by a mentee
    goals: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    seniority: str = ""
    experience_years: float | None = None
    department: str = ""
    organisation: str = ""
    reports_to: str = ""
    capacity: int = 1  # most mentees a mentor takes; always 1 for a mentee
    avoid: frozenset[str] = frozenset()
    prefer: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in (*SET_FIELDS, "avoid", "prefer"):
            data[key] = sorted(data[key])
        data["availability"] = [str(w) for w in self.availability]
        return data


@dataclass
class ImportResult:
    profiles: list[Profile]
    errors: list[str] = field(default_factory=list)


class ProfileImportError(InvalidInput):
    """Some rows are invalid; `errors` lists each as "row N: ..."."""

    def __init__(self, errors: list[str]):
        shown = "; ".join(errors[:MAX_ERRORS_SHOWN])
        more = (
            f" (and {len(errors) - MAX_ERRORS_SHOWN} more)"
            if len(errors) > MAX_ERRORS_SHOWN
            else ""
        )
        super().__init__(f"{len(errors)} invalid row(s), nothing imported: {shown}{more}")
        self.errors = errors


def parse_csv(text: str) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV with a header, each with its spreadsheet row number (the header is row 1)."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), strict=True)
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise InvalidInput("the CSV has no header row")
        names = [h.strip().lower() for h in header]
        unknown = [n for n in names if n not in COLUMNS]
        if unknown:
            raise InvalidInput(
                f"unknown CSV column(s) {', '.join(map(repr, unknown))}; known: {', '.join(COLUMNS)}"
            )
        missing = [n for n in REQUIRED if n not in names]
        if missing:
            raise InvalidInput(f"the CSV has no {', '.join(map(repr, missing))} column")
        rows = []
        for values in reader:
            number = reader.line_num
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(names):
                raise InvalidInput(
                    f"row {number}: {len(values)} values but the header has {len(names)} columns"
                )
            rows.append((number, dict(zip(names, values, strict=True))))
    except csv.Error as exc:
        raise InvalidInput(f"malformed CSV near row {reader.line_num}: {exc}") from None
    return rows


def parse_json_rows(data: Any) -> list[tuple[int, dict[str, Any]]]:
    """JSON profiles are a list of objects; row N is the N-th object (from 1)."""
    if not isinstance(data, list):
        raise InvalidInput("profiles must be a JSON list of objects")
    rows = []
    for number, row in enumerate(data, start=1):
        if not isinstance(row, dict):
            raise InvalidInput(f"row {number}: expected an object")
        rows.append((number, row))
    return rows


def import_profiles(
    rows: Sequence[tuple[int, Mapping[str, Any]]],
    *,
    role: Role | None = None,
    allow_partial: bool = False,
) -> ImportResult:
    """Validate every row. Any invalid row fails the whole import unless `allow_partial`.

    `role` is the role of every row (a file of mentors, say); a row may repeat it but
    not contradict it.
    """
    profiles: list[Profile] = []
    errors: list[str] = []
    seen: dict[str, tuple[int, str]] = {}  # casefolded identity -> (row, as written)
    for number, row in rows:
        try:
            profile = parse_profile(row, role=role)
            key = profile.identity.casefold()
            if key in seen:
                first, written = seen[key]
                differs = f" as {written!r} (identities ignore case)"
                raise ValueError(
                    f"identity {profile.identity!r} already used on row {first}"
                    f"{differs if written != profile.identity else ''}"
                )
        except ValueError as exc:
            errors.append(f"row {number}: {exc}")
            continue
        seen[key] = (number, profile.identity)
        profiles.append(profile)
    if errors and not allow_partial:
        raise ProfileImportError(errors)
    return ImportResult(profiles, errors)


def parse_profile(row: Mapping[str, Any], *, role: Role | None = None) -> Profile:
    """One profile from a CSV or JSON row; ValueError names the field that is wrong."""
    unknown = sorted(set(row) - set(COLUMNS))
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(map(repr, unknown))}")
    identity = _text(row, "identity")
    if not identity:
        raise ValueError("identity is empty")
    row_role = _text(row, "role").lower() or role
    if row_role not in ROLES:
        raise ValueError(f"role must be mentor or mentee, got {row.get('role')!r}")
    if role is not None and row_role != role:
        raise ValueError(f"role {row_role!r} in a list of {role}s")
    timezone = _text(row, "timezone")
    check_timezone(timezone)
    capacity = _capacity(row.get("capacity"), row_role)
    return Profile(
        identity=identity,
        name=_text(row, "name") or identity,
        role=row_role,
        timezone=timezone,
        availability=parse_availability(row.get("availability")),
        languages=_set(row, "languages"),
        skills=_set(row, "skills"),
        goals=_set(row, "goals"),
        tags=_set(row, "tags"),
        seniority=_text(row, "seniority"),
        experience_years=_number(row.get("experience_years"), "experience_years"),
        department=_text(row, "department"),
        organisation=_text(row, "organisation"),
        reports_to=_text(row, "reports_to"),
        capacity=capacity,
        avoid=frozenset(_items(row.get("avoid"))),
        prefer=frozenset(_items(row.get("prefer"))),
    )


def profile_from_json(data: Mapping[str, Any]) -> Profile:
    """A profile stored by `Profile.to_json`."""
    return parse_profile(data)


def check_timezone(name: str) -> None:
    if not name:
        raise ValueError("timezone is empty")
    if name not in _known_zones():
        raise ValueError(f"unknown time zone {name!r}")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def parse_availability(value: Any) -> tuple[Window, ...]:
    """Windows like "Mon 09:00-12:00; Wed 18:30-20:00". A window past midnight
    ("Fri 22:00-01:00") continues on the next day. Times are rounded inwards to the
    quarter hour, the resolution shared hours are computed at."""
    windows: list[Window] = []
    for item in _items(value):
        match = _WINDOW.match(item)
        if not match:
            raise ValueError(f"availability {item!r} is not like 'Mon 09:00-12:00'")
        day_name, h1, m1, h2, m2 = match.groups()
        day_key = day_name.lower()[:3]
        if day_key not in DAYS:
            raise ValueError(f"availability {item!r}: unknown day {day_name!r}")
        day = DAYS.index(day_key)
        start, end = int(h1) * 60 + int(m1), int(h2) * 60 + int(m2)
        if int(m1) > 59 or int(m2) > 59 or start > DAY_MINUTES or end > DAY_MINUTES:
            raise ValueError(f"availability {item!r}: not a time of day")
        if end == start:  # "09:00-09:00": no time, or a whole day? Ask rather than guess.
            raise ValueError(
                f"availability {item!r} starts and ends at the same time; "
                "a whole day is 00:00-24:00"
            )
        overnight = 0 < end < start  # "22:00-01:00"; an end of 00:00 means midnight
        start, end = -(-start // 15) * 15, end // 15 * 15
        if end == 0:
            end = DAY_MINUTES
        if overnight:
            windows.append(Window(day, start, DAY_MINUTES))
            windows.append(Window((day + 1) % 7, 0, end))
        elif end <= start:
            raise ValueError(f"availability {item!r} is shorter than a quarter hour")
        else:
            windows.append(Window(day, start, end))
    return tuple(sorted({w for w in windows if w.end > w.start}))


def _known_zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES


_ZONES: frozenset[str] | None = None


def _text(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError(f"{key} must be text, got {value!r}")
    return str(value).strip()


def _items(value: Any) -> list[str]:
    """A list field: a JSON list, or text separated by ';' (commas are kept for names)."""
    if value is None:
        return []
    if isinstance(value, str):
        parts = value.split(";")
    elif isinstance(value, list):
        parts = value
    else:
        raise ValueError(f"expected a list or ';'-separated text, got {value!r}")
    out = []
    for part in parts:
        if not isinstance(part, str):
            raise ValueError(f"list items must be text, got {part!r}")
        if part.strip():
            out.append(part.strip())
    return out


def _set(row: Mapping[str, Any], key: str) -> frozenset[str]:
    # Case-insensitive: "Python" offered matches "python" wanted.
    return frozenset(item.casefold() for item in _items(row.get(key)))


def _number(value: Any, key: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, got {value!r}") from None
    if number < 0 or number != number:
        raise ValueError(f"{key} must be a number ≥ 0, got {value!r}")
    return number


def _capacity(value: Any, role: str) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        return 1
    try:
        capacity = int(str(value).strip())
    except ValueError:
        raise ValueError(f"capacity must be a whole number ≥ 0, got {value!r}") from None
    if capacity < 0:
        raise ValueError(f"capacity must be a whole number ≥ 0, got {value!r}")
    if role == "mentee" and capacity != 1:
        raise ValueError("capacity applies to mentors only")
    return capacity


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def read_profiles_file(
    path: str, *, role: Role | None = None, allow_partial: bool = False
) -> ImportResult:
    """Profiles from a .csv or .json file (the CLI's input)."""
    import json

    text = read_text_file(path)
    if path.lower().endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path}: not valid JSON ({exc})") from None
        return import_profiles(parse_json_rows(data), role=role, allow_partial=allow_partial)
    return import_profiles(parse_csv(text), role=role, allow_partial=allow_partial)


def read_text_file(path: str) -> str:
    """A UTF-8 text file (the CLI's inputs); bytes that are not UTF-8 are InvalidInput
    naming where, so the CLI prints one line instead of a traceback."""
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None


def check_new_identities(profiles: Iterable[Profile], stored: Iterable[str]) -> None:
    """InvalidInput if an imported identity differs only in case from a stored one:
    "BX001" after "bx001" is the same person typed twice, not a second person."""
    known = {identity.casefold(): identity for identity in stored}
    clashes = [
        f"{p.identity!r} (stored as {known[p.identity.casefold()]!r})"
        for p in profiles
        if known.get(p.identity.casefold(), p.identity) != p.identity
    ]
    if clashes:
        raise InvalidInput(
            f"identities differ only in case from stored ones (identities ignore case): "
            f"{', '.join(clashes[:MAX_ERRORS_SHOWN])}"
        )


def split_roles(profiles: Iterable[Profile]) -> tuple[list[Profile], list[Profile]]:
    """(mentees, mentors), each in the given order."""
    mentees: list[Profile] = []
    mentors: list[Profile] = []
    for p in profiles:
        (mentors if p.role == "mentor" else mentees).append(p)
    return mentees, mentors
