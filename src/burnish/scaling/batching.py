"""Cross-problem micro-batching for async callers.

Search algorithms are written per problem as coroutines; many problems run together under
``asyncio.gather``. Every coroutine that asks an engine or reward model for work between two
event-loop turns lands in the same batch: the first request schedules a flush with
``loop.call_soon``, which runs only after every task already woken has reached its own request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["MicroBatcher"]


class MicroBatcher:
    """Collect requests from concurrent coroutines and serve them with one call of ``fn``.

    ``fn(requests) -> results`` is synchronous and gets every request submitted since the last
    flush, in submission order; it returns one result per request.
    """

    def __init__(self, fn: Callable[[list[Any]], Sequence[Any]]) -> None:
        self._fn = fn
        self._pending: list[tuple[Any, asyncio.Future]] = []
        self._scheduled = False
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
        try:
            results = self._fn([r for r, _ in pending])
        except BaseException as e:  # hand the error to every waiter
            for _, fut in pending:
                if not fut.done():
                    fut.set_exception(e)
            return
        for (_, fut), res in zip(pending, results, strict=True):
            if not fut.done():
                fut.set_result(res)
