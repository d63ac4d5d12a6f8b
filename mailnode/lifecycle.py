"""Start and stop as one ordered stack: each part that starts registers how it stops,
so stopping is the exact reverse of starting, and a failing step neither skips the
rest nor leaves what already started running (the node and the archive both)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable


async def start_stack(
    start_parts: Callable[[contextlib.AsyncExitStack], Awaitable[None]],
) -> contextlib.AsyncExitStack:
    """Run ``start_parts(stack)``; if it fails, undo what it started and raise."""
    stack = contextlib.AsyncExitStack()
    try:
        await start_parts(stack)
    except BaseException:
        await stack.aclose()
        raise
    return stack
