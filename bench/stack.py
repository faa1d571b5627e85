"""The embedded stack as processes the benchmarks can measure, kill and start again: the Temporal dev server on its
SQLite file, a worker, and what a process has used of the CPU."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from printroom.cli.dev import temporal_command, wait_for_temporal
from printroom.settings import Settings
from printroom.statemachines.order import ORDER

# The benchmarks send no email at an order's start (the workers' settings and the memo of the client starting orders).
START_EMAILS_OFF = {email: {"send": "never"} for email in ORDER.emails_on_start}

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DevServer:
    """`printroom dev`'s Temporal server (SQLite + WAL, search attributes registered) as a process of its own, on
    free ports, to kill and start again on the same file and address."""

    def __init__(self, data_dir: Path) -> None:
        self.settings = Settings(dev={"temporal_port": free_port(), "ui_port": free_port(), "data_dir": data_dir})
        self.address = f"127.0.0.1:{self.settings.dev.temporal_port}"
        self.log = data_dir / "temporal.log"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> Client:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(temporal_command(self.settings), stdout=log, stderr=subprocess.STDOUT)
        return await wait_for_temporal(self.process, self.address, self.log)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)


async def at_most(at_once: int, count: int, one: Callable[[int], Awaitable[None]], every: float | None = None) -> None:
    """one(0) ... one(count - 1), never more than `at_once` running; with `every`, the n-th starts no sooner than
    n * every seconds from now (and waits for a slot from then, as an operator's request would)."""
    gate = asyncio.Semaphore(at_once)

    async def gated(n: int) -> None:
        async with gate:
            await one(n)

    if every is None:
        await asyncio.gather(*(gated(n) for n in range(count)))
        return
    started, tasks = time.monotonic(), []
    for n in range(count):
        await asyncio.sleep(max(0.0, started + n * every - time.monotonic()))
        tasks.append(asyncio.create_task(gated(n)))
    await asyncio.gather(*tasks)


def runless(message_id: str) -> str:
    """A Message-ID without its run (`.r` and 10 hex digits): an order's email named as in every run, for counting
    what arrived per order and trigger."""
    return re.sub(r"\.r[0-9a-f]{10}(?=[.@])", "", message_id, count=1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def worker_settings(path: Path, smtp_port: int, task_queue: str, more: str = "") -> Path:
    """A `printroom worker` settings file for the benchmarks: their SMTP sink, their queue, a delivery record
    beside the file, nothing sent at an order's start; `more` adds TOML (the emails under test, limits)."""
    start_off = "".join(f'[emails.{email}]\nsend = "never"\n' for email in START_EMAILS_OFF)
    path.write_text(f"""
operators = "ops@example.com"
deliveries_dir = "{path.parent / 'deliveries'}"
[smtp]
host = "127.0.0.1"
port = {smtp_port}
timeout_seconds = 10
[temporal]
task_queue = "{task_queue}"
{start_off}{more}""")
    return path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


class WorkerProcess:
    """A worker in a process of its own: started, read from /proc, stopped."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as output:  # a file, not a pipe: a pipe nobody reads would stop the worker when full
            self.process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)

    def _status_kb(self, field: str) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"no {field} for process {self.process.pid}")

    @property
    def rss_mb(self) -> float:
        return self._status_kb("VmRSS") / 1024

    @property
    def peak_mb(self) -> float:
        return self._status_kb("VmHWM") / 1024

    @property
    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    async def idle(self, quiet: float = 1.0, at_most: float = 60.0) -> None:
        """Until the worker has used under 2% of a core for `quiet` seconds: its tasks done, its memory settled."""
        deadline = time.monotonic() + at_most
        while time.monotonic() < deadline:
            before = self.cpu_seconds
            await asyncio.sleep(quiet)
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited: {self.log.read_text(errors='replace')[-2000:]}")
            if self.cpu_seconds - before < 0.02 * quiet:
                return

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()


def printroom_worker(settings_file: Path, address: str, log: Path) -> WorkerProcess:
    """`printroom worker`, as a print room runs it, with the given settings file."""
    command = [sys.executable, "-c", "from printroom.cli.main import main; main()", "--settings", str(settings_file), "worker"]
    return WorkerProcess(command, {**os.environ, "TEMPORAL_ADDRESS": address}, log)


async def timer_pending(handle: WorkflowHandle) -> bool:
    """A TimerStarted in the history that neither fired nor was cancelled."""
    started, ended = set(), set()
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            started.add(event.event_id)
        elif event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
            ended.add(event.timer_fired_event_attributes.started_event_id)
        elif event.event_type == EventType.EVENT_TYPE_TIMER_CANCELED:
            ended.add(event.timer_canceled_event_attributes.started_event_id)
    return bool(started - ended)
