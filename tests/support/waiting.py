"""Waiting in tests for a state that nothing signals: the one polling helper.

Prefer an event when the code under test offers one; poll only what changes silently
(counters inside aiortc callbacks, rows another connection writes, a server's /metrics).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

_UNSET: Any = object()


@overload
async def eventually(
    check: Callable[[], Awaitable[T]],
    timeout: float = ...,
    interval: float = ...,
    what: str = ...,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T],
    timeout: float = ...,
    interval: float = ...,
    what: str = ...,
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "condition",
) -> Any:
    """Call `check()` (awaiting it if it returns an awaitable) every `interval` seconds
    until its value is truthy, and return that value. After `timeout` seconds, raise
    AssertionError naming `what` and the last value seen (a check still running then is
    cancelled)."""
    last: Any = _UNSET
    try:
        async with asyncio.timeout(timeout):
            while True:
                value = check()
                if inspect.isawaitable(value):
                    value = await value
                if value:
                    return value
                last = value
                await asyncio.sleep(interval)
    except TimeoutError:
        seen = "no value yet" if last is _UNSET else f"last value {last!r}"
        raise AssertionError(f"{what} not met within {timeout} s ({seen})") from None
