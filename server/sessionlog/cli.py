"""`python -m server report`: program health as a self-contained HTML file."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path

from server.config import Settings
from server.sessionlog.program_health import DEFAULT_QUIET_DAYS

Command = Callable[[argparse.Namespace, Settings], int]


def _report(args: argparse.Namespace, settings: Settings) -> int:
    from server.sessionlog.program_health import program_health
    from server.sessionlog.report import render_report
    from server.store import Database
    from server.store.migrate import migrate

    async def run() -> str:
        database = Database(settings.effective_database_url)
        try:
            await migrate(database)
            return render_report(await program_health(database, quiet_days=args.quiet_days))
        finally:
            await database.close()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(asyncio.run(run()), encoding="utf-8")
    print(f"program health written to {out}")
    return 0


def _days(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 365:
        raise argparse.ArgumentTypeError("a whole number of days from 1 to 365")
    return value


def add_report_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], commands: dict[str, Command]
) -> None:
    report = sub.add_parser("report", help="write program health as a self-contained HTML file")
    report.add_argument("--out", default="pairwise-report.html", help="the HTML file to write")
    report.add_argument(
        "--quiet-days",
        type=_days,
        default=DEFAULT_QUIET_DAYS,
        help="a pair with no session or message for this long is going quiet",
    )
    report.add_argument("--data-dir")
    report.add_argument("--database-url")
    commands["report"] = _report
