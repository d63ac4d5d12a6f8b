"""Wakes the IMAP sessions of a mailbox when the applier has committed a change to it.

Every session of a mailbox runs on its shard's primary (front ends on other nodes
pipe their clients' bytes there), so a change made through any node, by SMTP, by
another session or by ``mailctl``, reaches every session from this one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class Hub:
    def __init__(self) -> None:
        self._events: dict[str, set[asyncio.Event]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, address: str) -> asyncio.Lock:
        """The mailbox's lock for a check-then-change (STORE UNCHANGEDSINCE)."""
        lock = self._locks.get(address)
        if lock is None:
            if len(self._locks) > 10_000:  # forget the unheld ones now and then
                self._locks = {a: k for a, k in self._locks.items() if k.locked()}
            lock = self._locks[address] = asyncio.Lock()
        return lock

    def watch(self, address: str) -> asyncio.Event:
        ev = asyncio.Event()
        self._events.setdefault(address, set()).add(ev)
        return ev

    def unwatch(self, address: str, ev: asyncio.Event) -> None:
        events = self._events.get(address)
        if events is not None:
            events.discard(ev)
            if not events:
                del self._events[address]

    def changed(self, addresses: Iterable[str]) -> None:
        """Called on the loop by a shard after each applied batch."""
        for a in addresses:
            for ev in self._events.get(a, ()):
                ev.set()
