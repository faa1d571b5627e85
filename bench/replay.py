"""Benchmark: what rebuilding one order from its history costs the worker, beside the bare workflow, in one run.

The nine-in-ten case of `bench/scale.py`: an order not held in the worker's cache is replayed from its history before
its status change runs. This records two histories on the embedded stack (an order started by a printroom client,
then accepted and its email sent; the bare workflow started, then signalled and its activity run) and replays each
many times with the SDK's Replayer, configured as a printroom worker is (printroom's modules passed through the
sandbox). It prints CPU per replay of each and the ratio; `--profile` adds where printroom's replay goes (cProfile,
run inline on the main thread).

    .venv/bin/python bench/replay.py [--replays 300] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.client import Client, WorkflowHistory  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.worker import Replayer, Worker  # noqa: E402

from bench.bare_workflow import BareEmailWorkflow, BareSender  # noqa: E402
from bench.order_emails import app_client, bench_order, bench_settings, compile_project  # noqa: E402
from bench.stack import DevServer, free_port  # noqa: E402
from printroom.cli.capture import SmtpCapture  # noqa: E402
from printroom.worker.main import build_worker  # noqa: E402
from printroom.worker.plugin import PrintroomPlugin  # noqa: E402


async def _settled(client: Client, workflow_id: str, events: int) -> WorkflowHistory:
    """The history once it holds `events` events and no workflow task is pending."""
    handle = client.get_workflow_handle(workflow_id)
    for _ in range(200):
        described = (await handle.describe()).raw_description
        if described.workflow_execution_info.history_length >= events and not described.HasField("pending_workflow_task"):
            return await handle.fetch_history()
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{workflow_id} did not reach {events} events")


async def record(smtp_port: int) -> tuple[WorkflowHistory, WorkflowHistory]:
    server = DevServer(Path(tempfile.mkdtemp(prefix="printroom-replay-")))
    client = await server.start()
    try:
        settings = bench_settings(smtp_port, task_queue="replay-printroom")
        async with build_worker(client, settings, task_queue="replay-printroom"):
            handle = await app_client(client, settings).start_workflow(
                "OrderWorkflow", bench_order("R1"), id="order-R1", task_queue="replay-printroom"
            )
            await _settled(client, handle.id, 5)  # started, its first task, the status upserted
            await handle.signal("change_status", {"trigger": "accept"})
            order = await _settled(client, handle.id, 11)  # the signal, its task, the send's marker, the upsert
        sender = BareSender("127.0.0.1", smtp_port, b"Message-ID: <MESSAGE-ID>\r\n\r\nbare\r\n")
        async with Worker(client, task_queue="replay-bare", workflows=[BareEmailWorkflow], activities=[sender.bare_send]):
            bare_handle = await client.start_workflow(BareEmailWorkflow.run, 3, id="bare-R1", task_queue="replay-bare")
            await _settled(client, bare_handle.id, 4)
            await bare_handle.signal(BareEmailWorkflow.send, "<bare.R1@example.com>")
            bare = await _settled(client, bare_handle.id, 14)  # the signal, its task, the activity, the next task
        return order, bare
    finally:
        server.stop()


async def _times(history: WorkflowHistory, count: int) -> AsyncIterator[WorkflowHistory]:
    for _ in range(count):
        yield history


async def cpu_per_replay(replayer: Replayer, history: WorkflowHistory, count: int, profile: cProfile.Profile | None = None) -> float:
    started = time.process_time()
    if profile:
        profile.enable()
    async with replayer.workflow_replay_iterator(_times(history, count)) as results:
        async for result in results:
            if result.replay_failure:
                raise result.replay_failure
    if profile:
        profile.disable()
    return (time.process_time() - started) * 1000 / count


async def main(replays: int, profile: bool) -> None:
    compile_project()
    with SmtpCapture(port=free_port()) as sink:
        order, bare = await record(sink.port)
    plugin = PrintroomPlugin(bench_settings(1025), check_templates=False)
    # As `printroom worker` runs orders: printroom's modules passed through the sandbox (a plain Replayer keeps
    # the full sandbox, which re-imports them for every replay). `debug_mode` runs the workflow on this thread,
    # where cProfile sees it.
    ours = Replayer(workflows=[], plugins=[plugin], data_converter=pydantic_data_converter,
                    workflow_runner=plugin._our_modules_passed_through(None), debug_mode=profile)  # noqa: SLF001  # fmt: skip
    theirs = Replayer(workflows=[BareEmailWorkflow], debug_mode=profile)
    figures: dict[str, list[float]] = {"bare": [], "printroom": []}
    for name, replayer, history in (("bare", theirs, bare), ("printroom", ours, order)) * 3:  # warm, then two rounds
        figures[name].append(await cpu_per_replay(replayer, history, replays))
    bare_ms, ours_ms = min(figures["bare"][1:]), min(figures["printroom"][1:])
    print(f"replaying one history {replays} times, best of two rounds; {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    print(f"  bare workflow ({len(bare.events)} events)        {bare_ms:6.2f} ms CPU per replay")
    print(f"  printroom order ({len(order.events)} events)      {ours_ms:6.2f} ms CPU per replay  ({ours_ms / bare_ms:.2f}x bare, "
          f"{ours_ms - bare_ms:+.2f} ms; each replay includes the Replayer's own set-up of a worker, alike for both)")  # fmt: skip
    if profile:
        stats = cProfile.Profile()
        await cpu_per_replay(ours, order, replays, stats)
        print("where printroom's replay goes (cumulative; the SDK's part is shared with the bare workflow):")
        pstats.Stats(stats).sort_stats("cumulative").print_stats(r"printroom/(workflows|statemachines|models)", 25)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replays", type=int, default=300)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.replays, args.profile))
    sys.stdout.flush()
    os._exit(0)  # temporalio can crash the interpreter at exit (sdk-python issue 300)
