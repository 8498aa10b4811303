"""MicroBatcher: concurrent submissions share calls of the batch function, each gets its own result, errors
reach every request of their batch, and a lone request does not wait for the window."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from llmrec.serving.batching import MicroBatcher


class Doubler:
    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[list[int]] = []
        self.delay = delay
        self.threads: set[str] = set()

    def __call__(self, xs: list[int]) -> list[int]:
        self.calls.append(list(xs))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if any(x < 0 for x in xs):
            raise ValueError("negative")
        return [2 * x for x in xs]


def test_concurrent_submissions_share_calls():
    fn = Doubler(delay=0.02)

    async def go():
        b = MicroBatcher(fn, window_s=0.01, max_batch=8)
        out = await asyncio.gather(*(b.submit(i) for i in range(30)))
        await b.close()
        return out, b.stats()

    out, stats = asyncio.run(go())
    assert out == [2 * i for i in range(30)]
    assert len(fn.calls) < 30 and max(len(c) for c in fn.calls) <= 8
    assert sorted(x for c in fn.calls for x in c) == list(range(30))
    assert stats["batches"] == len(fn.calls) and stats["requests"] == 30 and stats["largest_batch"] == 8
    assert len(fn.threads) == 1 and not fn.threads & {threading.current_thread().name}  # one worker thread


def test_a_lone_request_does_not_wait_for_the_window():
    fn = Doubler()

    async def go():
        b = MicroBatcher(fn, window_s=2.0, max_batch=8)
        t = time.perf_counter()
        for i in range(3):  # one at a time: each batch holds one request, so none waits
            assert await b.submit(i) == 2 * i
        took = time.perf_counter() - t
        await b.close()
        return took

    assert asyncio.run(go()) < 1.0


def test_an_error_reaches_every_request_of_its_batch_and_the_next_batch_runs():
    fn = Doubler(delay=0.02)

    async def go():
        b = MicroBatcher(fn, window_s=0.01, max_batch=4)
        first = asyncio.ensure_future(b.submit(1))
        await asyncio.sleep(0)  # the first batch starts with this one alone
        bad = await asyncio.gather(*(b.submit(x) for x in (2, -1, 3)), return_exceptions=True)
        good = await b.submit(5)
        await b.close()
        return await first, bad, good

    first, bad, good = asyncio.run(go())
    assert first == 2 and good == 10
    assert all(isinstance(e, ValueError) for e in bad)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(lambda xs: xs, max_batch=0)
    with pytest.raises(ValueError, match="window_s"):
        MicroBatcher(lambda xs: xs, window_s=-1)
