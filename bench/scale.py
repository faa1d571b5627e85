"""Scale and memory, on the embedded stack: what one order held in a worker's cache costs beside a bare workflow,
then 10,000 open orders with the worker's memory and signal-to-email latency while status changes keep coming.

Each worker runs in a process of its own (`printroom worker`, as a print room runs it), so that its resident memory
(VmRSS, and VmHWM for the peak) is read from /proc as the operating system counts it.

    .venv/bin/python bench/scale.py [--orders 10000] [--cached 1000] [--changes 300] [--in-flight 10] [--rate 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.client import Client  # noqa: E402

from bench.order_emails import Arrivals, app_client, bench_order, compile_project  # noqa: E402
from bench.sink import SinkProcess  # noqa: E402
from bench.stack import START_EMAILS_OFF, DevServer, WorkerProcess, at_most, cpu_seconds, free_port, percentile, worker_settings  # noqa: E402
from bench.stack import printroom_worker as printroom_process  # noqa: E402
from printroom.settings import Settings  # noqa: E402

# What the workers' settings (bench.stack.worker_settings) say of the start emails, for the client starting orders.
STARTER_SETTINGS = Settings(emails=START_EMAILS_OFF)


def printroom_worker(workdir: Path, address: str, smtp_port: int, queue: str, cached: int) -> WorkerProcess:
    """`printroom worker` with only the status email under test, sent always; nothing at an order's start."""
    more = f'[worker]\nmax_cached_workflows = {cached}\n[emails.order_accepted]\nsend = "always"\n'
    return printroom_process(worker_settings(workdir / f"{queue}.toml", smtp_port, queue, more), address, workdir / f"{queue}.log")


def bare_worker(workdir: Path, address: str, smtp_port: int, queue: str, cached: int) -> WorkerProcess:
    command = [sys.executable, "-m", "bench.bare_workflow", address, queue, str(cached), str(smtp_port)]
    return WorkerProcess(command, dict(os.environ), workdir / f"{queue}.log")


async def start_and_settle(
    client: Client, worker: WorkerProcess, ids: list[str], start: Callable[[str], Awaitable[None]], timeout: float = 1800
) -> None:
    """Start every workflow, then wait until each has had its first workflow task (history >= 4 events), the
    worker alive all along; then read 20 of the histories: a failed first task would look like a cheap workflow."""
    await at_most(50, len(ids), lambda n: start(ids[n]))
    deadline = time.monotonic() + timeout
    waiting = list(ids)
    while waiting:
        if worker.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{len(waiting)} workflows not started by the worker: {worker.log.read_text(errors='replace')[-2000:]}")
        lengths: dict[str, int] = {}

        async def length(n: int) -> None:
            description = await client.get_workflow_handle(waiting[n]).describe()
            lengths[waiting[n]] = description.raw_description.workflow_execution_info.history_length

        await at_most(50, len(waiting), length)
        waiting = [w for w in waiting if lengths[w] < 4]
        if waiting:
            await asyncio.sleep(2)
    for workflow_id in random.Random(7).sample(ids, min(20, len(ids))):
        async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                raise RuntimeError(f"{workflow_id}: {event.workflow_task_failed_event_attributes.failure.message}")


async def cost_per_cached(client: Client, kind: str, worker: WorkerProcess, queue: str, count: int) -> float:
    """KB of worker memory per workflow held in its cache: RSS after `count` more are held, less before, over count."""
    if kind == "bare":
        async def start(workflow_id: str) -> None:
            await client.start_workflow("BareEmailWorkflow", 1, id=workflow_id, task_queue=queue)
    else:
        starter = app_client(client, STARTER_SETTINGS)

        async def start(workflow_id: str) -> None:
            await starter.start_workflow("OrderWorkflow", bench_order(workflow_id.removeprefix("order-")),
                                         id=workflow_id, task_queue=queue)  # fmt: skip
    await start_and_settle(client, worker, [f"order-W{kind}{n}" for n in range(20)], start)  # warm: imports, caches
    await worker.idle()
    before = worker.rss_mb
    await start_and_settle(client, worker, [f"order-C{kind}{n}" for n in range(count)], start)
    await worker.idle()
    return (worker.rss_mb - before) * 1024 / count


@dataclass
class Changes:
    """Signal-to-email latencies of one leg, its wall time, and the CPU each process spent in it."""

    latencies: list[float]
    seconds: float
    cpu: dict[str, float]

    def pct(self, q: float) -> float:
        return percentile(self.latencies, q)

    def line(self) -> str:
        count = len(self.latencies)
        cpu = ", ".join(f"{name} {seconds * 1000 / count:.1f}" for name, seconds in self.cpu.items())
        return (f"{count / self.seconds:5.1f}/s, signal-to-email p50 {self.pct(0.5):4.0f} ms, p99 {self.pct(0.99):4.0f} ms;"
                f" CPU ms per change: {cpu}")  # fmt: skip


async def drive_changes(
    processes: dict[str, int], count: int, in_flight: int, rate: float | None, one: Callable[[int, float | None], Awaitable[float]]
) -> Changes:
    """`count` changes, each `one(n, due)` returning its latency in ms. Without `rate`, `in_flight` always busy
    (the saturated ceiling; latency from the signal); with it, one change due every 1/rate s as a print room's
    operators send them, never more than `in_flight` at once (latency from when it was due, waiting included)."""
    latencies: list[float] = []

    async def change(n: int) -> None:
        latencies.append(await one(n, None if rate is None else started + n / rate))

    cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
    started = time.monotonic()
    await at_most(in_flight, count, change, every=None if rate is None else 1 / rate)
    seconds = time.monotonic() - started
    return Changes(latencies, seconds, {name: cpu_seconds(pid) - cpu_before[name] for name, pid in processes.items()})


async def main(orders: int, cached: int, changes: int, in_flight: int, rate: float) -> None:
    compile_project()
    workdir = Path(tempfile.mkdtemp(prefix="printroom-scale-"))
    smtp_port = free_port()
    server = DevServer(workdir)
    sink = Arrivals()
    sink_process = SinkProcess(smtp_port, sink.arrived)
    await sink_process.start()
    assert sink_process.process is not None
    try:
        client = await server.start()
        address = server.address

        def processes(worker: WorkerProcess) -> dict[str, int]:
            return {"worker": worker.process.pid, "Temporal server": server.process.pid,
                    "SMTP sink": sink_process.process.pid, "this driver": os.getpid()}  # type: ignore[union-attr]  # fmt: skip

        # 1. What one workflow held in the cache costs, ours beside a bare one (each in a fresh worker process);
        #    then the bare workflows each take one signal, `in_flight` always busy: this machine's ceiling.
        costs: dict[str, float] = {}
        for kind in ("bare", "printroom"):
            queue = f"cache-{kind}"
            worker = (bare_worker(workdir, address, smtp_port, queue, cached + 50) if kind == "bare"
                      else printroom_worker(workdir, address, smtp_port, queue, cached + 50))  # fmt: skip
            try:
                costs[kind] = await cost_per_cached(client, kind, worker, queue, cached)
                if kind == "bare":

                    async def bare_signal(n: int, due: float | None) -> float:
                        message_id = f"<bare.{n}@example.com>"
                        arrived = sink.expect(message_id)
                        sent = due or time.monotonic()
                        await client.get_workflow_handle(f"order-Cbare{n}").signal("send", message_id)
                        return (await asyncio.wait_for(arrived, 60) - sent) * 1000

                    bare = await drive_changes(processes(worker), min(changes, cached), in_flight, None, bare_signal)
            finally:
                worker.stop()

        # 2. The bare workflow the same way as the orders below: `orders` of them open on one worker holding
        #    `cached`, started the same way, then one signal each on workflows picked at random (nine in ten
        #    rebuilt from history first), `in_flight` always busy.
        queue = "open-bare"
        worker = bare_worker(workdir, address, smtp_port, queue, cached)
        try:
            await worker.idle()
            started = time.monotonic()
            bare_ids = [f"bare-O{n}" for n in range(orders)]

            async def start_bare(workflow_id: str) -> None:
                await client.start_workflow("BareEmailWorkflow", 1, id=workflow_id, task_queue=queue)

            await start_and_settle(client, worker, bare_ids, start_bare)
            bare_open_seconds = time.monotonic() - started
            bare_chosen = random.Random(13).sample(bare_ids, min(changes, orders))

            async def bare_rebuilt(n: int, due: float | None) -> float:
                message_id = f"<bare.open.{n}@example.com>"
                arrived = sink.expect(message_id)
                sent = due or time.monotonic()
                await client.get_workflow_handle(bare_chosen[n]).signal("send", message_id)
                return (await asyncio.wait_for(arrived, 60) - sent) * 1000

            bare_open = await drive_changes(processes(worker), len(bare_chosen), in_flight, None, bare_rebuilt)
        finally:
            worker.stop()

        # 3. `orders` open orders on one worker holding `cached` of them; status changes on orders picked at random,
        #    first at `rate` per second, then `in_flight` always busy.
        queue = "open-orders"
        worker = printroom_worker(workdir, address, smtp_port, queue, cached)
        try:
            await worker.idle()
            at_start = worker.rss_mb
            started = time.monotonic()
            ids = [f"O{n}" for n in range(orders)]

            starter = app_client(client, STARTER_SETTINGS)

            async def start(order_id: str) -> None:
                await starter.start_workflow("OrderWorkflow", bench_order(order_id), id=f"order-{order_id}", task_queue=queue)

            await start_and_settle(client, worker, [f"order-{i}" for i in ids], lambda w: start(w.removeprefix("order-")))
            open_seconds = time.monotonic() - started
            await worker.idle()
            rss_open = worker.rss_mb
            samples: list[float] = []
            chosen = random.Random(13).sample(ids, min(2 * changes, orders))

            def accept(offset: int) -> Callable[[int, float | None], Awaitable[float]]:
                async def one(n: int, due: float | None) -> float:
                    order_id = chosen[offset + n]
                    arrived = sink.expect(f"<{order_id}.order_accepted.1.customer@example.com>")
                    sent = due or time.monotonic()
                    await client.get_workflow_handle(f"order-{order_id}").signal("change_status", {"trigger": "accept"})
                    latency = (await asyncio.wait_for(arrived, 60) - sent) * 1000
                    samples.append(worker.rss_mb)
                    return latency

                return one

            half = len(chosen) // 2
            steady = await drive_changes(processes(worker), half, in_flight, rate, accept(0))
            saturated = await drive_changes(processes(worker), len(chosen) - half, in_flight, None, accept(half))
            await worker.idle()
            rss_after, peak = worker.rss_mb, worker.peak_mb
        finally:
            worker.stop()
    finally:
        await sink_process.stop()
        server.stop()

    print(f"Temporal dev server (SQLite, WAL), aiosmtpd sink process, each worker a process of its own; "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")  # fmt: skip
    print(f"memory per workflow held in the cache ({cached} held, RSS after less before):")
    print(f"  bare workflow (signal -> activity)   {costs['bare']:7.1f} KB")
    print(f"  printroom OrderWorkflow              {costs['printroom']:7.1f} KB  ({costs['printroom'] / costs['bare']:.2f}x)")
    print(f"{orders} open orders, worker.max_cached_workflows = {cached}:")
    print(f"  started and settled in {open_seconds:.0f} s; worker RSS {at_start:.0f} MB idle, {rss_open:.0f} MB with "
          f"the orders open")  # fmt: skip
    print(f"  status changes on orders picked at random, at most {in_flight} in flight:")
    print(f"    {rate:g}/s coming      {steady.line()}")
    print(f"    {in_flight} always busy   {saturated.line()}")
    print(f"  bare ceiling, all held, {in_flight} always busy: {bare.line()}")
    print(f"  ratio printroom/bare (all held) at {in_flight} always busy, changes/s: "
          f"{len(saturated.latencies) / saturated.seconds / (len(bare.latencies) / bare.seconds):.2f}")  # fmt: skip
    print(f"{orders} open bare workflows, the same cache: started and settled in {bare_open_seconds:.0f} s "
          f"(printroom / bare: {open_seconds / bare_open_seconds:.2f}, target <= 1.5)")  # fmt: skip
    print(f"  {in_flight} always busy   {bare_open.line()}")
    worker_ratio = (saturated.cpu["worker"] / len(saturated.latencies)) / (bare_open.cpu["worker"] / len(bare_open.latencies))
    print(f"  worker CPU per change, printroom / bare, both nine in ten rebuilt: {worker_ratio:.2f} (target <= 1.3); "
          f"changes/s {len(saturated.latencies) / saturated.seconds / (len(bare_open.latencies) / bare_open.seconds):.2f}")  # fmt: skip
    print(f"  worker RSS during the changes up to {max(samples):.0f} MB, after {rss_after:.0f} MB, peak of the run "
          f"(VmHWM) {peak:.0f} MB (target < 300)")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--cached", type=int, default=1000, help="worker.max_cached_workflows")
    parser.add_argument("--changes", type=int, default=300)
    parser.add_argument("--in-flight", type=int, default=10)
    parser.add_argument("--rate", type=float, default=10.0, help="status changes per second in the steady leg")
    args = parser.parse_args()
    asyncio.run(main(args.orders, args.cached, args.changes, args.in_flight, args.rate))
    sys.stdout.flush()
    os._exit(0)  # temporalio can crash the interpreter at exit (sdk-python issue 300)
