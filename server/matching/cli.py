"""`python -m server match`: match a cohort from files, no server or database needed."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from server.config import Settings
from server.errors import PairwiseError

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
        for skipped in (*mentors.errors, *mentees.errors):
            print(f"skipped {skipped}", file=sys.stderr)
        outcome = match_cohort(
            mentees.profiles, mentors.profiles, criteria, args.mode,
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
    print(_summary_table(outcome.summary))
    if args.out:
        _write(Path(args.out), rows)
        print(f"pairs written to {args.out}")
    return 0


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
            writer.writerow([
                r["mentee"], r["mentor"] or "", r["score"] if r["score"] is not None else "",
                r["fixed"], r["reason"] or "", r["explanation"]["summary"], slots,
            ])  # fmt: skip
