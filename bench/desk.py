"""The operators' desk with many orders waiting: how long `printroom web` takes to answer a page of the list (50
held drafts) as the number of orders with a draft grows, on the embedded stack (dev server on SQLite + WAL, a
`printroom worker` process, `printroom web` served by uvicorn in this process, asked over HTTP).

    .venv/bin/python bench/desk.py [--orders 1000] [--steps 100,500] [--cached 1000] [--repeat 7]

Each order is accepted once with order_accepted held for an operator (one draft each). At each size it times the
first, a middle and the last page, and apart: the visibility listing alone, and one order's `drafts` query.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.client import Client  # noqa: E402

from bench.order_emails import bench_order  # noqa: E402
from bench.stack import DevServer, at_most, free_port, printroom_worker, worker_settings  # noqa: E402
from printroom.links import DeskLink, LinkSigner  # noqa: E402
from printroom.settings import Settings, TemporalSettings, WebSettings  # noqa: E402
from printroom.web.server import serve_web  # noqa: E402
from printroom.web.temporal import TemporalPages, waiting_orders  # noqa: E402
from printroom.worker.main import connect  # noqa: E402

SECRET = "bench-desk-secret-0123456789abcdef0123"
QUEUE = "printroom-bench-desk"


async def timed(call: Callable[[], Awaitable[object]], repeat: int) -> tuple[float, float]:
    """Median and best of `repeat` calls, in milliseconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), min(times)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as answer:
        if answer.status != 200:
            raise RuntimeError(f"{url}: {answer.status}")
        return answer.read()


async def add_orders(client: Client, count: int) -> None:
    """`count` more orders, each accepted, its order_accepted held: one draft each."""

    async def one(_: int) -> None:
        order = bench_order(f"PO-{uuid.uuid4().hex[:10]}")
        handle = await client.start_workflow("OrderWorkflow", order, id=f"order-{order['id']}", task_queue=QUEUE)
        await handle.signal("change_status", {"trigger": "accept", "by": "bench"})

    await at_most(20, count, one)


async def wait_listed(client: Client, count: int, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while (listed := (await client.count_workflows(waiting_orders(QUEUE))).count) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {listed} of {count} orders have a draft held after {timeout:.0f}s")
        await asyncio.sleep(1)


async def main(orders: int, steps: list[int], cached: int, repeat: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="printroom-bench-desk-"))
    server = DevServer(work)
    await server.start()
    more = (
        f'[worker]\nmax_cached_workflows = {cached}\n[emails.order_accepted]\nsend = "always"\nedit_before_send = true\n'
        '[drafts]\nremind_after = "30d"\n'
    )
    worker = printroom_worker(worker_settings(work / "worker.toml", free_port(), QUEUE, more), server.address, work / "worker.log")
    port = free_port()
    settings = Settings(
        temporal=TemporalSettings(address=server.address, task_queue=QUEUE),
        web=WebSettings.model_validate({"port": port, "public_url": f"http://127.0.0.1:{port}", "secret": SECRET}),
    )
    client = await connect(settings.temporal, use_environment=False)
    stop = asyncio.Event()
    serving = asyncio.create_task(serve_web(settings, stop, client))
    desk = f"http://127.0.0.1:{port}/en/desk/" + LinkSigner(SECRET.encode()).desk(DeskLink(datetime.now(timezone.utc) + timedelta(days=1)))
    pages = TemporalPages(lambda: asyncio.sleep(0, client))
    print(f"orders with a draft | page 1 ms (median / best) | middle page | last page | listing alone | one drafts query  [{repeat} runs each, worker cache {cached}]")
    try:
        have = 0
        for size in [*steps, orders]:
            await add_orders(client, size - have)
            have = size
            await wait_listed(client, size)
            await worker.idle()
            last = -(-size // 50)
            figures = []
            for page in (1, max(1, last // 2), last):
                await asyncio.to_thread(get, f"{desk}?page={page}")  # once before timing: the connection and caches
                figures.append(await timed(lambda p=page: asyncio.to_thread(get, f"{desk}?page={p}"), repeat))
            listing = await timed(lambda: pages.waiting_orders(QUEUE), repeat)
            some = (await pages.waiting_orders(QUEUE))[size // 2].workflow_id
            query = await timed(lambda: pages.drafts(some), repeat)
            row = " | ".join(f"{m:.0f} / {b:.0f}" for m, b in [*figures, listing, query])
            print(f"{size} | {row}", flush=True)
    finally:
        stop.set()
        await serving
        worker.stop()
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--steps", default="100,500", help="sizes measured on the way, comma-separated")
    parser.add_argument("--cached", type=int, default=1000, help="the worker's max_cached_workflows")
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()
    steps = [int(s) for s in options.steps.split(",") if s.strip()]
    asyncio.run(main(options.orders, [s for s in steps if s < options.orders], options.cached, options.repeat))
