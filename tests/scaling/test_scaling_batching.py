"""MicroBatcher: one call per event-loop turn; with ``offload`` on a worker thread, the loop
keeps running while the call does."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from burnish.scaling.batching import MicroBatcher


@pytest.mark.parametrize("offload", [False, True])
def test_concurrent_requests_share_one_call(offload) -> None:
    calls: list[list[int]] = []

    def fn(requests: list[int]) -> list[int]:
        calls.append(list(requests))
        return [r * 10 for r in requests]

    batcher = MicroBatcher(fn, offload=offload)

    async def go():
        return await asyncio.gather(*(batcher.submit(i) for i in range(5)))

    assert asyncio.run(go()) == [0, 10, 20, 30, 40]
    assert calls == [[0, 1, 2, 3, 4]] and batcher.flushes == 1


def test_offload_keeps_the_loop_serving_and_errors_reach_every_waiter() -> None:
    threads: set[str] = set()

    def slow(requests: list[int]) -> list[int]:
        threads.add(threading.current_thread().name)
        time.sleep(0.3)
        if requests[0] < 0:
            raise ValueError("bad request")
        return requests

    batcher = MicroBatcher(slow, offload=True)

    async def go():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.create_task(ticker())
        got = await batcher.submit(1)
        with pytest.raises(ValueError, match="bad request"):
            await asyncio.gather(batcher.submit(-1), batcher.submit(2))
        t.cancel()
        return got, ticks

    got, ticks = asyncio.run(go())
    assert got == 1
    assert ticks > 20  # the loop ran while the calls slept (0.6 s)
    assert threads == {"burnish-batcher_0"}
