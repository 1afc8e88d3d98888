"""`python -m server match`: match a cohort from files, no server or database needed."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from server.config import Settings
from server.errors import InvalidInput, PairwiseError
from server.spreadsheet import neutralise

BAR_WIDTH = 30


def add_match_command(
    sub: Any, commands: dict[str, Callable[[argparse.Namespace, Settings], int]]
) -> None:
    """Register the `match` subcommand on the CLI's subparsers."""
    match = sub.add_parser(
        "match",
        help="match mentors and mentees from CSV/JSON files",
        description="Match a cohort: prints a summary, writes the pairs (CSV or JSON by "
        "the --out extension), shows progress on stderr.",
    )
    match.add_argument("--mentors", required=True, help="mentor profiles (.csv or .json)")
    match.add_argument("--mentees", required=True, help="mentee profiles (.csv or .json)")
    match.add_argument("--criteria", required=True, help="criteria (.yaml or .json)")
    match.add_argument("--mode", default="optimal", choices=["optimal", "max-coverage", "stable"])
    match.add_argument("--out", help="where to write the pairs: pairs.csv or pairs.json")
    match.add_argument(
        "--allow-partial", action="store_true", help="skip invalid profile rows instead of failing"
    )
    match.add_argument(
        "--fixed",
        help="pairs to keep as set: CSV with mentee,mentor columns, or JSON "
        '[{"mentee": ..., "mentor": ...}] (the API\'s fixed_pairs)',
    )
    commands["match"] = run_match


def run_match(args: argparse.Namespace, settings: Settings) -> int:
    from server.matching.cohort import match_cohort
    from server.matching.criteria import load_criteria
    from server.matching.profiles import read_profiles_file, read_text_file

    bar = _ProgressBar(sys.stderr)
    try:
        criteria = load_criteria(read_text_file(args.criteria))
        mentors = read_profiles_file(args.mentors, role="mentor", allow_partial=args.allow_partial)
        mentees = read_profiles_file(args.mentees, role="mentee", allow_partial=args.allow_partial)
        fixed = read_fixed_pairs(args.fixed) if args.fixed else []
        for skipped in (*mentors.errors, *mentees.errors):
            print(f"skipped {skipped}", file=sys.stderr)
        outcome = match_cohort(
            mentees.profiles, mentors.profiles, criteria, args.mode, fixed=fixed,
            progress=bar,
        )  # fmt: skip
    except PairwiseError as exc:
        bar.end_line()
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        bar.end_line()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = [r.to_json() for r in outcome.results]
    for warning in outcome.summary["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(_summary_table(outcome.summary))
    if args.out:
        _write(Path(args.out), rows)
        print(f"pairs written to {args.out}")
    return 0


def read_fixed_pairs(path: str) -> list[tuple[str, str]]:
    """(mentee, mentor) identities from a CSV with a header naming `mentee` and `mentor`,
    or a JSON list of {"mentee", "mentor"} objects: the same shape as the API's."""
    from server.matching.profiles import read_text_file

    text = read_text_file(path)
    try:
        if path.lower().endswith(".json"):
            rows = json.loads(text)
        else:
            rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff")), strict=True))
    except (json.JSONDecodeError, csv.Error) as exc:
        raise InvalidInput(f"{path}: not valid fixed pairs ({exc})") from None
    if not isinstance(rows, list):
        raise InvalidInput(f"{path}: fixed pairs are a list of {{mentee, mentor}}")
    pairs = []
    for number, row in enumerate(rows, start=1):
        mentee = row.get("mentee") if isinstance(row, dict) else None
        mentor = row.get("mentor") if isinstance(row, dict) else None
        if not (isinstance(mentee, str) and mentee.strip()) or not (
            isinstance(mentor, str) and mentor.strip()
        ):
            raise InvalidInput(f"{path}: fixed pair {number} needs a mentee and a mentor")
        pairs.append((mentee.strip(), mentor.strip()))
    return pairs


class _ProgressBar:
    """A plain-text bar redrawn in place: `matching [#########.....]  60%`."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.shown = -1

    def __call__(self, fraction: float) -> None:
        percent = int(fraction * 100)
        if percent == self.shown:
            return
        self.shown = percent
        filled = int(fraction * BAR_WIDTH)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        end = "\n" if percent >= 100 else ""
        self.stream.write(f"\rmatching [{bar}] {percent:3d}%{end}")
        self.stream.flush()

    def end_line(self) -> None:
        """Finish a bar left part-drawn, so a message after it starts on its own line."""
        if 0 <= self.shown < 100:
            self.stream.write("\n")
            self.shown = 100


def _summary_table(summary: dict[str, Any]) -> str:
    rows = [
        ("mode", summary["mode"]),
        ("mentees", summary["mentees"]),
        ("mentors", summary["mentors"]),
        ("places", summary["places"]),
        ("matched", summary["matched"]),
        *((f"unmatched: {reason}", n) for reason, n in summary["unmatched_reasons"].items()),
        ("total score", summary["total_score"]),
        ("mean score", summary["mean_score"]),
        ("seconds", summary["seconds"]),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["mentee", "mentor", "score", "fixed", "reason", "summary", "slots"])
        for r in rows:
            slots = "; ".join(f"{s['mentee_local']} / {s['mentor_local']}" for s in r["slots"])
            writer.writerow([neutralise(str(cell)) for cell in (
                r["mentee"], r["mentor"] or "", r["score"] if r["score"] is not None else "",
                r["fixed"], r["reason"] or "", r["explanation"]["summary"], slots,
            )])  # fmt: skip
