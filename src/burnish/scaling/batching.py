"""Cross-problem micro-batching for async callers.

Search algorithms are written per problem as coroutines; many problems run together under
``asyncio.gather``. Every coroutine that asks an engine or reward model for work between two
event-loop turns lands in the same batch: the first request schedules a flush with
``loop.call_soon``, which runs only after every task already woken has reached its own request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["MicroBatcher"]


class MicroBatcher:
    """Collect requests from concurrent coroutines and serve them with one call of ``fn``.

    ``fn(requests) -> results`` is synchronous and gets every request submitted since the last
    flush, in submission order; it returns one result per request. With ``offload`` it runs on
    one worker thread (calls stay one at a time, in order), so the event loop keeps serving
    other work meanwhile (a server); requests that arrive during a call form the next batch.
    """

    def __init__(self, fn: Callable[[list[Any]], Sequence[Any]], offload: bool = False) -> None:
        self._fn = fn
        self._pending: list[tuple[Any, asyncio.Future]] = []
        self._scheduled = False
        self.offload = offload
        self._worker: concurrent.futures.ThreadPoolExecutor | None = None
        self.flushes = 0  # number of calls of fn, for tests and reports

    async def submit(self, request: Any) -> Any:
        """Queue ``request`` and wait for its result."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        self._pending.append((request, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await fut

    def _flush(self) -> None:
        pending, self._pending, self._scheduled = self._pending, [], False
        self.flushes += 1
        requests = [r for r, _ in pending]
        if self.offload:
            if self._worker is None:
                self._worker = concurrent.futures.ThreadPoolExecutor(1, "burnish-batcher")
            call = asyncio.get_running_loop().run_in_executor(self._worker, self._fn, requests)
            call.add_done_callback(lambda done: _deliver(pending, done))
            return
        try:
            results = self._fn(requests)
        except BaseException as e:  # hand the error to every waiter
            _fail(pending, e)
            return
        _resolve(pending, results)


def _deliver(pending: list[tuple[Any, asyncio.Future]], done: asyncio.Future) -> None:
    if done.cancelled():
        _fail(pending, asyncio.CancelledError())
    elif done.exception() is not None:
        _fail(pending, done.exception())
    else:
        _resolve(pending, done.result())


def _fail(pending: list[tuple[Any, asyncio.Future]], error: BaseException) -> None:
    for _, fut in pending:
        if not fut.done():
            fut.set_exception(error)


def _resolve(pending: list[tuple[Any, asyncio.Future]], results: Sequence[Any]) -> None:
    for (_, fut), res in zip(pending, results, strict=True):
        if not fut.done():
            fut.set_result(res)
