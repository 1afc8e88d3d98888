"""`make test`: the whole suite as two pytest processes at once.

One runs the tests with media connections, network namespaces or a browser (the
`media_group` marker, tests/conftest.py), one at a time as before; the other runs the
rest at nice 10, so that the first and its browsers get the CPU first. Its output is
shown when it ends (after the first's, which streams). The exit status is the worse of
the two. Arguments go to both pytest commands.

pytest-xdist's `--dist loadgroup` would do this in one process, but with pytest 9.2 its
groups are ignored (it renames node ids through `_nodeid`, which pytest 9.2 no longer
reads) and the two kinds of test ran side by side.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

REST_NICENESS = 10


def main(args: list[str]) -> int:
    command = [sys.executable, "-m", "pytest"]
    with tempfile.TemporaryFile() as rest_output:
        rest = subprocess.Popen(
            [*command, "-m", "not media_group", *args],
            stdout=rest_output,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.nice(REST_NICENESS),
        )
        try:
            media = subprocess.run([*command, "-m", "media_group", *args]).returncode
        finally:
            rest_code = rest.wait()
        rest_output.seek(0)
        print("\n--- the rest (run beside the above, at nice 10)", flush=True)
        sys.stdout.buffer.write(rest_output.read())
        sys.stdout.flush()
    # pytest's 5 (no tests collected) only where the arguments selected none of a kind
    codes = [code for code in (media, rest_code) if code != 5] or [5]
    return max(codes)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
