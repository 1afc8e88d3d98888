"""docs/phone.md names exactly the phone settings that exist."""

import re
from pathlib import Path

from server.config import Settings

DOC = (Path(__file__).resolve().parents[3] / "docs" / "phone.md").read_text()


def test_the_phone_doc_names_every_sip_setting_and_no_other() -> None:
    named = set(re.findall(r"PAIRWISE_SIP_[A-Z_]+[A-Z]", DOC))
    existing = {
        f"PAIRWISE_{name.upper()}" for name in Settings.model_fields if name.startswith("sip_")
    }
    assert named - existing == set()  # nothing documented that does not exist
    table = DOC.split("## Settings", 1)[1].split("\n## ", 1)[0]
    assert {s for s in existing if f"`{s}`" not in table} == set()  # each has a row
