"""schemathesis against the server's own OpenAPI document: no 500s, responses match it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.process import ADMIN_KEY, ServerProcess

pytestmark = pytest.mark.slow


def test_openapi_fuzzing_finds_no_server_errors_and_no_schema_mismatch(tmp_path: Path) -> None:
    server = ServerProcess(
        data_dir=tmp_path / "data",
        env={
            "PAIRWISE_TOKENS_PER_MINUTE": "1000000",
            "PAIRWISE_AUTH_FAILURES_PER_MINUTE": "1000000",
            "PAIRWISE_LOG_LEVEL": "WARNING",
        },
    ).start()
    try:
        st = Path(sys.executable).with_name("st")
        result = subprocess.run(
            [
                str(st),
                "run",
                f"{server.url}/api/openapi.json",
                "-H",
                f"Authorization: Bearer {ADMIN_KEY}",
                "--checks",
                "not_a_server_error,response_schema_conformance,status_code_conformance,"
                "content_type_conformance",
                "--max-examples",
                os.environ.get("PAIRWISE_FUZZ_EXAMPLES", "10"),  # 100 in `benchmarks fuzz`
                "--workers",
                "2",
                "--seed",
                "1",
                "--no-color",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.stop()
    summary = result.stdout[-6000:]
    assert result.returncode == 0, summary
    assert "generated" in summary  # it really ran cases
    assert "Internal server error" not in server.log()
