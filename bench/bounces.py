"""The bounce watcher measured on real servers (issue 24): Debian's Postfix writes each DSN, Debian's Dovecot serves
the mailbox over IMAP with TLS, the dev server (SQLite + WAL) runs the orders and the watcher, the worker runs here.

1. Latency: an order's receipt to an address its server refuses; from Postfix writing the DSN into the mailbox
   (the file's time) to the order's `state` showing the bounce. The poll interval aside: the watcher is asked to
   poll (`poll_now`) when the DSN lands.
2. Throughput: N bounces (DSNs naming N orders' receipts) put in the mailbox at once; the watcher reads them at its
   batch size, signals each order and files each away: bounces per minute, until the last is filed, and until the
   last order's `state` shows its bounce; the watcher's history events for them.

    .venv/bin/python bench/bounces.py                 # --latency 10 --bounces 1000 --batch 200 [--temporary]
Needs root (it installs and starts Postfix and Dovecot as the tests do)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trustme  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402
from temporalio.client import Client, WorkflowHandle  # noqa: E402

from bench.stack import DevServer, free_port, percentile  # noqa: E402
from printroom.cli.capture import SmtpCapture  # noqa: E402
from printroom.models import BOUNCE_WATCH_ID, BounceWatchState, OrderState  # noqa: E402
from printroom.settings import Settings  # noqa: E402
from printroom.worker.main import build_worker  # noqa: E402
from printroom.workflows.bounce_watch import POLL_NOW  # noqa: E402
from tests import bounce_samples  # noqa: E402
from tests.dovecot_server import PASSWORD, USER, DovecotServer, ensure_dovecot_installed  # noqa: E402
from tests.postfix_server import MAILBOXES, PostfixServer, ensure_postfix_installed  # noqa: E402
from tests.test_bounce_watch import REFUSING, SENDER, RefusesEveryone  # noqa: E402


def settings(tmp: Path, smtp_port: int, dovecot: DovecotServer, ca_file: Path, batch: int, smtp_tls: bool) -> Settings:
    return Settings(
        deliveries_dir=tmp / f"deliveries-{uuid.uuid4().hex[:6]}",
        sender={"address": SENDER}, operators=["ops@example.org"],
        smtp={"host": "127.0.0.1", "port": smtp_port, **({"security": "starttls", "ca_file": ca_file} if smtp_tls else {})},
        emails={"order_received_operator": {"send": "never"}},
        bounces={"host": "127.0.0.1", "port": dovecot.port, "ca_file": ca_file, "username": USER, "password": PASSWORD,
                 "poll_every": "1h", "batch_size": batch, "processed": "delete"},
    )  # fmt: skip


async def order_state(handle: WorkflowHandle[Any, Any]) -> OrderState:
    return await handle.query("state", result_type=OrderState)


async def until(check: Any, timeout: float = 600, every: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(every)
    raise TimeoutError("benchmark step did not finish")


async def start_order(client: Client, task_queue: str, email: str) -> WorkflowHandle[Any, Any]:
    order_id = f"B-{uuid.uuid4().hex[:8]}"
    order = {"id": order_id, "customer": {"name": "Marie Curie", "email": email}, "jobs": [{"id": "J1", "name": "Flyers"}]}
    return await client.start_workflow("OrderWorkflow", order, id=f"order-{order_id}", task_queue=task_queue)


async def watcher_events(client: Client) -> int:
    """Events of every run of the watcher so far (continue-as-new included)."""
    total, run = 0, None
    while True:
        handle = client.get_workflow_handle(BOUNCE_WATCH_ID, run_id=run)
        events = [e async for e in handle.fetch_history_events()]
        total += len(events)
        first = events[0].workflow_execution_started_event_attributes
        if not first.continued_execution_run_id:
            return total
        run = first.continued_execution_run_id


async def latency(client: Client, s: Settings, dovecot: DovecotServer, count: int) -> list[float]:
    seconds = []
    async with build_worker(client, s, task_queue=f"bench-bounces-{uuid.uuid4().hex[:6]}", check_templates=False) as worker:
        watcher = client.get_workflow_handle(BOUNCE_WATCH_ID)
        await until(lambda: _running(watcher), timeout=30, every=0.1)
        for _ in range(count):
            order = await start_order(client, worker.task_queue, f"nobody@{REFUSING}")
            landed = await until(lambda: _new_file(dovecot), timeout=60)
            await watcher.signal(POLL_NOW)
            await until(lambda: _has_bounce(order), timeout=60)
            seconds.append(time.time() - landed)
        await watcher.terminate("benchmark phase over")
    return seconds


async def _running(watcher: WorkflowHandle[Any, Any]) -> bool:
    try:
        return (await watcher.query("state", result_type=BounceWatchState)).next_poll is not None
    except Exception:  # noqa: BLE001  # not started yet
        return False


async def _new_file(dovecot: DovecotServer) -> float | None:
    """The time Postfix wrote the DSN (the Maildir file's mtime) once it is there."""
    files = list((dovecot.maildir / "new").glob("*")) + list((dovecot.maildir / "cur").glob("*"))
    return max(f.stat().st_mtime for f in files) if files else None


async def _has_bounce(order: WorkflowHandle[Any, Any]) -> bool:
    return bool((await order_state(order)).bounces)


async def throughput(client: Client, s: Settings, dovecot: DovecotServer, count: int, temporary: bool) -> dict[str, float]:
    task_queue = f"bench-bounces-{uuid.uuid4().hex[:6]}"
    async with build_worker(client, s, task_queue=task_queue, check_templates=False) as worker:
        watcher = client.get_workflow_handle(BOUNCE_WATCH_ID)
        await until(lambda: _running(watcher), timeout=30, every=0.1)
        orders = [await start_order(client, worker.task_queue, "marie@example.org") for _ in range(count)]
        receipts = await asyncio.gather(*(until(lambda o=o: _receipt(o), timeout=600, every=0.2) for o in orders))
        # Permanent: each order holds a copy of its receipt for an operator (a render, a draft); temporary (4.4.1,
        # delayed): each records it only, which leaves the watcher's own pace.
        sample = bounce_samples.delayed() if temporary else bounce_samples.postfix_user_unknown()
        for message_id in receipts:
            dovecot.deliver(sample.replace(bounce_samples.OURS.encode(), message_id.encode()))
        before = await watcher.query("state", result_type=BounceWatchState)
        events_before = await watcher_events(client)
        started = time.monotonic()
        await watcher.signal(POLL_NOW)
        done = await until(lambda: _matched(watcher, before.counts.matched + count), every=0.05)
        filed = time.monotonic() - started
        await until(lambda: _all_bounced(orders), every=0.2)
        shown = time.monotonic() - started
        events = await watcher_events(client) - events_before
        await watcher.terminate("benchmark over")
    return {"filed_s": filed, "shown_s": shown, "per_minute": count / filed * 60, "events": events,
            "polls": done.polls - before.polls, "signals": done.counts.signals - before.counts.signals}  # fmt: skip


async def _receipt(order: WorkflowHandle[Any, Any]) -> str | None:
    return next((e.message_id for e in (await order_state(order)).emails_sent if e.email_trigger == "order_received"), None)


async def _matched(watcher: WorkflowHandle[Any, Any], matched: int) -> BounceWatchState | None:
    state = await watcher.query("state", result_type=BounceWatchState)
    return state if state.counts.matched >= matched else None


async def _all_bounced(orders: list[WorkflowHandle[Any, Any]]) -> bool:
    shown = await asyncio.gather(*(_has_bounce(o) for o in orders))
    return all(shown)


async def main(latency_runs: int, bounces: int, batch: int, temporary: bool) -> None:
    for why in (ensure_postfix_installed(), ensure_dovecot_installed()):
        if why:
            sys.exit(why)
    tmp = Path(tempfile.mkdtemp(prefix="bench-bounces-"))
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    refusing = Controller(RefusesEveryone(), hostname="127.0.0.1", port=free_port())
    refusing.start()
    postfix = PostfixServer(ca, (*MAILBOXES, SENDER), {REFUSING: f"smtp:[127.0.0.1]:{refusing.port}"}).start()
    dovecot = DovecotServer(ca, postfix.mail / "example.com" / "printroom").start()
    server = DevServer(tmp / "temporal")
    (tmp / "temporal").mkdir()
    sink = SmtpCapture(port=free_port()).start()
    try:
        client = await server.start()
        through_postfix = settings(tmp, postfix.port, dovecot, tmp / "ca.pem", batch, smtp_tls=True)
        seconds = await latency(client, through_postfix, dovecot, latency_runs)
        figures = await throughput(client, settings(tmp, sink.port, dovecot, tmp / "ca.pem", batch, smtp_tls=False), dovecot, bounces, temporary)
    finally:
        sink.stop()
        server.stop()
        dovecot.stop()
        postfix.stop()
        refusing.stop()
    print(f"bounce watcher, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, Python {platform.python_version()}")
    print(f"latency, Postfix's DSN written -> order state shows it ({latency_runs} runs, poll asked at once): "
          f"p50 {percentile(seconds, 0.5) * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms")  # fmt: skip
    print(f"{bounces} {'temporary' if temporary else 'permanent'} bounces in the mailbox (batch {batch}): all filed in {figures['filed_s']:.1f} s = "
          f"{figures['per_minute']:.0f} bounces/min; every order's state shows its bounce after {figures['shown_s']:.1f} s")
    print(f"watcher history for them: {figures['events']} events in {figures['polls']} polls "
          f"({figures['events'] / bounces * 1000:.0f} per 1,000 bounces); signals {figures['signals']}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=int, default=10, help="orders bounced one by one through Postfix")
    parser.add_argument("--bounces", type=int, default=1000, help="bounces put in the mailbox at once")
    parser.add_argument("--batch", type=int, default=200, help="bounces.batch_size")
    parser.add_argument("--temporary", action="store_true", help="delayed (4.4.1) bounces: the orders record them only")
    arguments = parser.parse_args()
    logging.disable(logging.WARNING)  # each order logs its bounce: thousands of lines
    asyncio.run(main(arguments.latency, arguments.bounces, arguments.batch, arguments.temporary))
    sys.stdout.flush()
