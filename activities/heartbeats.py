"""An activity's lease kept while it works: something done every few seconds for as long as a block runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext

from temporalio import activity


def heartbeating() -> AbstractAsyncContextManager[None]:
    """A retried attempt heartbeats for as long as it works (rendering, waiting for a connection, sending, reading
    a mailbox in threads): the server learns within a minute that its worker died, and never takes a slow one for
    dead. A local activity has no heartbeat: nothing."""
    if not activity.in_activity() or activity.info().is_local:
        return nullcontext()

    async def beat() -> None:
        activity.heartbeat()

    return every(10, beat, at_once=True)


@asynccontextmanager
async def every(seconds: float, do: Callable[[], Awaitable[None]], *, at_once: bool = False) -> AsyncIterator[None]:
    """`do` every `seconds` (and once at the start, `at_once`) for as long as the block runs."""

    async def loop() -> None:
        if at_once:
            await do()
        while True:
            await asyncio.sleep(seconds)
            await do()

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
