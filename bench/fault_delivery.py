"""Fault script: 300 orders x 3 automatic emails while the worker is SIGKILLed three times and the SMTP server
is down for 20 s; counts by Message-ID what arrived: missing, duplicated, and duplicates reported in `state`.

    .venv/bin/python bench/fault_delivery.py [--orders 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench.order_emails import TRIGGERS, compile_project, free_port, start_temporal  # noqa: E402
from bench.sink import SinkProcess  # noqa: E402
from printroom.cli.dev import wait_for_temporal  # noqa: E402
from printroom.models import OrderState  # noqa: E402
from printroom.workflows.order import OrderWorkflow  # noqa: E402



class Sink(SinkProcess):
    """The SMTP server, a process of its own so that it can be stopped and started again on the same port."""

    def __init__(self, port: int) -> None:
        super().__init__(port, self._arrived)
        self.received: list[str] = []
        self.arrivals: dict[str, list[float]] = {}

    def _arrived(self, message_id: str, when: float) -> None:
        self.received.append(message_id)
        self.arrivals.setdefault(message_id, []).append(when)


class WorkerProcess:
    def __init__(self, settings_file: Path, address: str) -> None:
        self.command = [sys.executable, "-c", "from printroom.cli.main import main; main()", "--settings", str(settings_file), "worker"]
        self.env = {**os.environ, "TEMPORAL_ADDRESS": address}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


async def main(orders: int) -> None:
    compile_project()
    workdir = Path(tempfile.mkdtemp(prefix="printroom-fault-"))
    smtp_port = free_port()
    server, address, log_file = start_temporal(workdir)
    settings_file = workdir / "printroom.toml"
    settings_file.write_text(f"""
operators = "ops@example.com"
deliveries_dir = "{workdir / 'deliveries'}"
[smtp]
host = "127.0.0.1"
port = {smtp_port}
timeout_seconds = 10
[temporal]
task_queue = "fault"
[emails.order_received]
send = "never"
[emails.order_received_operator]
send = "never"
[emails.order_accepted]
send = "always"
[emails.order_in_production]
send = "always"
[emails.order_completed]
send = "always"
""")
    sink, worker = Sink(smtp_port), WorkerProcess(settings_file, address)
    await sink.start()
    try:
        client = await wait_for_temporal(server, address, log_file)
        worker.start()
        started = time.monotonic()
        handles = []
        for n in range(orders):
            order = {"id": f"F{n}", "customer": {"email": "marie@example.org"}, "jobs": [{"id": "J1"}]}
            handles.append(await client.start_workflow(OrderWorkflow.run, order, id=f"order-F{n}", task_queue="fault"))
        for trigger, _ in TRIGGERS:
            await asyncio.gather(*(h.signal("change_status", {"trigger": trigger}) for h in handles))
        print(f"{orders} orders started and signalled in {time.monotonic() - started:.1f}s; faults follow")

        async def at(seconds: float, what: str) -> None:
            await asyncio.sleep(max(0.0, started + seconds - time.monotonic()))
            print(f"  t={time.monotonic() - started:5.1f}s  {what}  (arrived so far: {len(sink.received)})")

        await at(4, "SIGKILL worker #1, restart")
        worker.kill(); worker.start()  # noqa: E702
        await at(7, "SMTP server stopped for 20 s")
        await sink.stop()
        await at(13, "SIGKILL worker #2, restart")
        worker.kill(); worker.start()  # noqa: E702
        await at(27, "SMTP server started again")
        await sink.start()
        await at(31, "SIGKILL worker #3, restart")
        worker.kill(); worker.start()  # noqa: E702

        expected = {f"<F{n}.{email}.1.customer@example.com>" for n in range(orders) for _, email in TRIGGERS}
        deadline = time.monotonic() + 600
        while not expected <= set(sink.received) and time.monotonic() < deadline:
            await asyncio.sleep(1)
        finished = time.monotonic() - started
        await asyncio.sleep(3)  # anything still in flight that would arrive twice
        states = [await h.query("state", result_type=OrderState) for h in handles]
    finally:
        if worker.process and worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
            worker.process.wait(timeout=40)
        await sink.stop()
        server.terminate()
        server.wait(timeout=15)

    counts = Counter(sink.received)
    missing = expected - set(counts)
    duplicated = {m: c for m, c in counts.items() if c > 1}
    reported = [n for s in states for n in s.email_notes if "stopped while sending" in n]
    resent_avoided = [n for s in states for n in s.email_notes if "not sent again" in n]
    print(f"expected {len(expected)} emails; arrived {len(counts)} distinct, {sum(counts.values())} in all, "
          f"after {finished:.1f}s")  # fmt: skip
    print(f"missing: {len(missing)}; duplicated: {len(duplicated)}; possible duplicates reported in state: "
          f"{len(reported)}; retries that found the email already accepted: {len(resent_avoided)}")  # fmt: skip
    for message_id in sorted(missing)[:10]:
        print(f"  missing {message_id}")
    for message_id, count in sorted(duplicated.items())[:10]:
        said = "reported in its order's state" if any(message_id in n for n in reported) else "NOT reported"
        times = ", ".join(f"t={t - started:.1f}s" for t in sink.arrivals[message_id])
        print(f"  {count}x {message_id}: {said} (arrived {times})")
        if said == "NOT reported":
            state = states[int(message_id[2:].split(".")[0])]
            for note in [*state.email_notes, *(f"failed: {f.error}" for f in state.emails_failed)]:
                print(f"      note: {note}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=300)
    asyncio.run(main(parser.parse_args().orders))
    sys.stdout.flush()
    os._exit(0)
