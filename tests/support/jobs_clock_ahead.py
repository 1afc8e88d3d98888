"""`python -m server` whose jobs run by a clock some seconds ahead of the wall clock: a
server process that starts as if it had been stopped that much longer, so that a test of a
job falling due while the server is down need not wait for that moment.

    python -m tests.support.jobs_clock_ahead SECONDS serve

Only the jobs' clock (`server.jobs.clock.system_clock`, the runner's default) moves: what
a job does at its time (a reminder sent, a webhook signed) reads that clock too.
"""

from __future__ import annotations

import sys
import time

from server.jobs import clock

AHEAD = float(sys.argv.pop(1))


def _ahead() -> float:
    return time.time() + AHEAD


clock.system_clock = _ahead  # before the runner imports it as its default

from server.__main__ import main  # noqa: E402
from server.jobs import runner  # noqa: E402

if runner.system_clock is not _ahead:
    sys.exit("server.jobs.runner was imported before the clock was set")
sys.exit(main())
