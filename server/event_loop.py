"""The event loop each server process runs on: uvloop unless the settings say asyncio.

The SFU's work is a callback per datagram. asyncio's selector loop runs one per loop
iteration (an `epoll_wait` each); libuv reads up to 32 datagrams from a socket once it
is readable, calling back for each, so a burst of a frame's packets costs one
iteration. Measured with the SFU receiving a 720p simulcast publisher (`python -m
benchmarks receive_cost`: its pairwise and pairwise-asyncio rows; docs/benchmarks.md).
`PAIRWISE_EVENT_LOOP=asyncio` runs the standard library's loop instead: to compare, or
as a way out should uvloop misbehave somewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar, get_args

EventLoopName = Literal["uvloop", "asyncio"]

T = TypeVar("T")


def named(text: str) -> EventLoopName:
    """The loop called `text` (ValueError if there is none of that name)."""
    for name in get_args(EventLoopName):
        if name == text:
            return name
    raise ValueError(f"no event loop called {text!r}: {' or '.join(get_args(EventLoopName))}")


def loop_factory(name: EventLoopName) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a new event loop of this kind (uvloop is imported only to be used)."""
    if name == "asyncio":
        return asyncio.new_event_loop
    import uvloop

    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], name: EventLoopName) -> T:
    """`asyncio.run(main)` on a new loop of this kind."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main)
