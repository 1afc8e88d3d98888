"""Work started in the background and held until it ends.

The event loop keeps only a weak reference to a task (the asyncio documentation of
`create_task`: "save a reference to the result of this function, to avoid a task
disappearing mid-execution"), so a task nobody holds can be collected before it
finishes. `BackgroundTasks` is that reference: a set each task leaves when it is done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


class BackgroundTasks:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, work: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        """Run `work` on the running loop, held here until it is done."""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def cancel_all(self) -> None:
        """Cancel what is still running and wait for it to stop."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
