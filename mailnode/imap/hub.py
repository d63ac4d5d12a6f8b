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

    def sessions(self) -> int:
        return sum(len(s) for s in self._events.values())
