"""`python -m server operator add/list/deactivate`: the first admin, from a shell."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.__main__ import main


def test_operators_are_added_listed_and_deactivated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--data-dir", str(tmp_path)]
    assert main(["operator", "add", "--email", "Root@Example.org", "--role", "admin", *where]) == 0
    assert "root@example.org\tadmin\tadded" in capsys.readouterr().out
    # The same address twice, or a role that is not an operator's, is refused.
    assert main(["operator", "add", "--email", "root@example.org", "--role", "viewer", *where]) == 1
    assert "exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["operator", "add", "--email", "x@example.org", "--role", "participant", *where])
    capsys.readouterr()
    assert main(["operator", "list", *where]) == 0
    assert capsys.readouterr().out.split() == ["1", "root@example.org", "admin", "active"]
    assert main(["operator", "deactivate", "--email", "root@example.org", *where]) == 0
    assert main(["operator", "list", *where]) == 0
    assert capsys.readouterr().out.split()[-1] == "deactivated"
    assert main(["operator", "deactivate", "--email", "nobody@example.org", *where]) == 1
