"""Futures that wait for a journal position: the one mechanism behind "wait until the
store has applied lsn X", "until every in-sync spare holds up to X" and "until the
archive holds up to X".

Positions are *ends*: a commit ending at ``end`` is held once the position reached is
``>= end``. The record *at* lsn ``n`` ends at ``n + 1`` for a caller that thinks in
record lsns (the store's applied position is the next lsn to apply).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class LsnWaiters:
    def __init__(self) -> None:
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()  # ties keep arrival order; futures never compare

    def __len__(self) -> int:
        return len(self._heap)

    def wait_for(self, end: int) -> asyncio.Future[None]:
        """A future resolved once reached(position) is called with position >= end."""
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (end, next(self._seq), fut))
        return fut

    def reached(self, position: float) -> None:  # math.inf releases every waiter
        while self._heap and self._heap[0][0] <= position:
            fut = heapq.heappop(self._heap)[2]
            if not fut.done():
                fut.set_result(None)

    def fail(self, error: BaseException) -> None:
        """Every waiter gets ``error`` (a demotion: nothing it waits for will come)."""
        heap, self._heap = self._heap, []
        for _, _, fut in heap:
            if not fut.done():
                fut.set_exception(error)
