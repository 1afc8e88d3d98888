"""docs/loadtests.md names every error kind the tool can report and every report field."""

from __future__ import annotations

import re

from tests.support.process import ROOT

DOC = (ROOT / "docs" / "loadtests.md").read_text()


def test_every_error_kind_the_tool_reports_is_documented() -> None:
    code = "\n".join(p.read_text() for p in (ROOT / "loadtests").glob("*.py"))
    kinds = set(re.findall(r'\.error\(\s*f?"([a-z_]+)', code)) | set(
        re.findall(r'on_error\(\s*"([a-z_]+)"', code)
    )
    assert len(kinds) > 15
    documented = set(re.findall(r"`([a-z_<>]+)`", DOC))
    missing = {k for k in kinds if k not in documented and f"{k}<" not in " ".join(documented)}
    missing = {k for k in missing if not any(d.startswith(k) and "<" in d for d in documented)}
    assert not missing, f"error kinds missing from docs/loadtests.md: {sorted(missing)}"


def test_every_top_level_report_field_is_documented() -> None:
    source = (ROOT / "loadtests" / "report.py").read_text() + (
        ROOT / "loadtests" / "merge.py"
    ).read_text()
    build = source[source.index("def build(") :]
    fields = set(re.findall(r'^\s+"([a-z_]+)": ', build[: build.index("def raw(")], re.M))
    fields |= {"shard", "raw", "workers"}
    table = DOC[DOC.index("`report.json` holds") :]
    missing = {f for f in fields if f"`{f}`" not in table and f"`summary.{f}`" not in table}
    assert not missing, f"report fields missing from docs/loadtests.md: {sorted(missing)}"
