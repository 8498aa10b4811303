"""Micro-batching: requests that arrive together are answered by one call of a batch function.

Why: a scorer's cost is mostly per call (one forward pass, one sparse product), not per user, so scoring the
users of 32 concurrent requests at once costs little more than scoring one. `MicroBatcher.submit` parks a
request; one collector task takes what is waiting — at most `max_batch` — and runs the batch function on a
single worker thread (scorers are not thread-safe; the event loop keeps accepting requests meanwhile).

The window. Requests that queue up while a batch is being scored form the next batch with no wait at all. A
short wait (`window_s`, a few ms) helps only when several clients are about to send: the collector waits,
at most `window_s`, until as many requests as its previous batch held are waiting. After a batch of one (a
single client) it never waits, so the window adds no latency to requests that come one at a time.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

Q = TypeVar("Q")
R = TypeVar("R")


class MicroBatcher(Generic[Q, R]):
    """`await submit(q)` → the result of `fn([..., q, ...])` for q; see the module doc. Bound to the event loop
    of its first `submit`; `close()` stops the collector and the worker thread."""

    def __init__(self, fn: Callable[[list[Q]], Sequence[R]], window_s: float = 0.005, max_batch: int = 64) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be ≥ 1, got {max_batch}")
        if window_s < 0:
            raise ValueError(f"window_s must be ≥ 0, got {window_s}")
        self.fn = fn
        self.window_s = window_s
        self.max_batch = max_batch
        self._pending: collections.deque[tuple[Q, asyncio.Future]] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmrec-scorer")
        self._last_size = 1
        self.batches = 0  # calls of fn
        self.items = 0  # requests they answered
        self.largest = 0

    async def submit(self, item: Q) -> R:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._collect())
        fut: asyncio.Future = loop.create_future()
        self._pending.append((item, fut))
        self._wakeup.set()  # type: ignore[union-attr]
        return await fut

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        wakeup = self._wakeup
        assert wakeup is not None
        while True:
            while not self._pending:
                wakeup.clear()
                await wakeup.wait()
            target = min(self.max_batch, self._last_size)
            deadline = loop.time() + self.window_s
            while len(self._pending) < target:  # more clients are about to send: wait for them, briefly
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                wakeup.clear()
                try:
                    await asyncio.wait_for(wakeup.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
            live = [(q, f) for q, f in batch if not f.done()]  # a client that went away cancelled its future
            if not live:
                continue
            self._last_size = len(live)
            try:
                results = await loop.run_in_executor(self._executor, self.fn, [q for q, _ in live])
                if len(results) != len(live):
                    raise RuntimeError(f"batch function returned {len(results)} results for {len(live)} items")
            except Exception as e:  # every request of the batch gets the error; the collector goes on
                for _, f in live:
                    if not f.done():
                        f.set_exception(e)
                continue
            self.batches += 1
            self.items += len(live)
            self.largest = max(self.largest, len(live))
            for (_, f), r in zip(live, results):
                if not f.done():
                    f.set_result(r)

    def stats(self) -> dict[str, Any]:
        return {"batches": self.batches, "requests": self.items, "largest_batch": self.largest,
                "mean_batch": round(self.items / self.batches, 2) if self.batches else 0.0,
                "max_batch": self.max_batch, "window_ms": round(self.window_s * 1000, 3)}

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=False, cancel_futures=True)
