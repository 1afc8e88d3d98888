"""One socket between the main process and a media worker: msgpack messages, each
prefixed with its length, in both directions.

Two kinds of message: a request (`request(op, args)`), answered by the other side's
`on_request` with a value or an error, and a one-way message (`send(op, args)`) for
`on_message`. Media packets (phone audio) go one-way: nobody waits on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack

from server.errors import PairwiseError
from server.rooms import events

log = logging.getLogger("pairwise.media.workers")

HEADER = struct.Struct(">I")
MAX_MESSAGE = 16 * 1024 * 1024  # an SDP is at most 64 KiB; stats of a full room far less

OnRequest = Callable[[str, dict[str, Any]], Awaitable[Any]]
OnMessage = Callable[[str, dict[str, Any]], None]


class ChannelClosed(ConnectionError):
    """The other side is gone (its process exited or was killed)."""


class RemoteError(Exception):
    """The other side failed with something that is not a `PairwiseError`."""


class Channel:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_request: OnRequest,
        on_message: OnMessage,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_request = on_request
        self._on_message = on_message
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reading = asyncio.create_task(self._read())

    async def request(self, op: str, args: dict[str, Any]) -> Any:
        """Ask the other side for `op` and wait for its answer; its `PairwiseError`s are
        raised here as they were raised there."""
        if self.closed.done():
            raise ChannelClosed(op)
        self._next_id += 1
        ident = self._next_id
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        try:
            self._write({"t": "req", "id": ident, "op": op, "a": args})
            return await future
        finally:
            self._pending.pop(ident, None)

    def send(self, op: str, args: dict[str, Any]) -> None:
        """A one-way message; dropped once the other side is gone."""
        if not self.closed.done():
            self._write({"t": "msg", "op": op, "a": args})

    async def close(self) -> None:
        self._reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reading
        self._closed()
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()

    def _write(self, message: dict[str, Any]) -> None:
        data = msgpack.packb(message, use_bin_type=True)
        self._writer.write(HEADER.pack(len(data)) + data)

    async def _read(self) -> None:
        try:
            while True:
                header = await self._reader.readexactly(HEADER.size)
                (size,) = HEADER.unpack(header)
                if size > MAX_MESSAGE:
                    raise ValueError(f"message of {size} bytes")
                message = msgpack.unpackb(await self._reader.readexactly(size), raw=False)
                self._dispatch(message)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass  # EOF: the other process is gone
        except Exception:
            log.exception("media worker channel broke")
        finally:
            self._closed()

    def _closed(self) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ChannelClosed("the other process is gone"))
        for task in list(self._tasks):
            task.cancel()

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["t"]
        if kind == "msg":
            try:
                self._on_message(message["op"], message["a"])
            except Exception:
                log.exception("media worker message failed", extra={"op": message["op"]})
        elif kind == "req":
            task = asyncio.create_task(self._answer(message["id"], message["op"], message["a"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == "res":
            future = self._pending.get(message["id"])
            if future is not None and not future.done():
                if "error" in message:
                    future.set_exception(_error(message["error"]))
                else:
                    future.set_result(message.get("value"))

    async def _answer(self, ident: int, op: str, args: dict[str, Any]) -> None:
        try:
            value = await self._on_request(op, args)
        except PairwiseError as exc:
            error = {"message": exc.message, "code": exc.code, "status": exc.status}
            self.send_result(ident, error=error)
        except Exception as exc:
            log.exception("media worker request failed", extra={"op": op})
            self.send_result(ident, error={"message": f"{type(exc).__name__}: {exc}"})
        else:
            self.send_result(ident, value=value)

    def send_result(
        self, ident: int, value: Any = None, error: dict[str, Any] | None = None
    ) -> None:
        if self.closed.done():
            return
        if error is not None:
            self._write({"t": "res", "id": ident, "error": error})
        else:
            self._write({"t": "res", "id": ident, "value": value})


def _error(error: dict[str, Any]) -> Exception:
    if "code" in error:
        return PairwiseError(error["message"], code=error["code"], status=error["status"])
    return RemoteError(error["message"])


def encode_event(event: events.RoomEvent) -> dict[str, Any]:
    """A room event as a message (its class name and its fields)."""
    return {"kind": type(event).__name__, **dataclasses.asdict(event)}


def decode_event(message: dict[str, Any]) -> events.RoomEvent:
    fields = dict(message)
    kind = getattr(events, fields.pop("kind"))
    if not (isinstance(kind, type) and issubclass(kind, events.RoomEvent)):
        raise ValueError(f"not a room event: {kind!r}")
    return kind(**fields)
