"""Gathers concurrent requests into one model call.

Requests queue up while the model works; when it is free, everything queued (up to `max_requests`) goes into the
next call. A lone request never waits for company, and under load a model call serves many requests: window
prompts of different requests share the forward passes (batch_size of the bundle). The model runs in one worker
thread, so the event loop keeps accepting (and refusing) requests meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("rerank_rl.serve")


class Batcher:
    def __init__(self, run_batch: Callable[[list], list], max_requests: int = 16):
        if max_requests < 1:
            raise ValueError("max_requests must be at least 1")
        self.run_batch, self.max_requests = run_batch, max_requests
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self.calls = 0  # model calls made, and requests served by them: their ratio is the batching achieved
        self.served = 0

    async def submit(self, item):
        """The result of `run_batch` for `item`, computed together with whatever else is queued."""
        if self._worker is None:  # created inside the server's running loop
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._work())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_requests and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            batch = [(item, future) for item, future in batch if not future.cancelled()]  # client went away
            if not batch:
                continue
            try:
                results = await loop.run_in_executor(self._executor, self.run_batch, [item for item, _ in batch])
            except Exception as err:  # noqa: BLE001 - a failed call answers its requests; the server goes on
                log.exception("model call failed")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                continue
            self.calls += 1
            self.served += len(batch)
            for (_, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)
