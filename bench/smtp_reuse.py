"""Benchmark: SMTP sessions reused (the pool, default settings) against a session per email (reuse off,
smtp.max_messages_per_connection = 1), through printroom's transport to a relay as print rooms have: aiosmtpd in a
process of its own, STARTTLS with a trustme certificate (verified against its CA) and AUTH required.

Legs alternate ABBA in one run: `--emails` customer emails with each setting (two legs of half), as printroom builds
them, `--in-flight` at once (the worker's smtp.max_connections). Prints emails/s, CPU ms per email in this process
(the worker's side) and in the relay's, and the sessions opened.

    .venv/bin/python bench/smtp_reuse.py [--emails 2000] [--in-flight 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trustme  # noqa: E402

from bench.sink import SinkProcess  # noqa: E402
from bench.stack import at_most, cpu_seconds, free_port  # noqa: E402
from printroom.activities.email import EmailActivities  # noqa: E402
from printroom.activities.smtp import SmtpTransport  # noqa: E402
from printroom.settings import Settings, SmtpSettings  # noqa: E402
from printroom.worker.sample import sample_request  # noqa: E402

USER, PASSWORD = "printroom", "bench-Pa55word"


@dataclass
class Leg:
    name: str
    emails: int
    seconds: float
    cpu_seconds: float  # this process: the transport's side
    relay_cpu_seconds: float
    sessions: int

    def __add__(self, other: Leg) -> Leg:
        return Leg(self.name, self.emails + other.emails, self.seconds + other.seconds, self.cpu_seconds + other.cpu_seconds,
                   self.relay_cpu_seconds + other.relay_cpu_seconds, self.sessions + other.sessions)  # fmt: skip

    def row(self) -> str:
        per_email = 1000 / self.emails
        return (f"{self.name:34} {self.emails / self.seconds:9.1f} {self.cpu_seconds * per_email:13.2f} "
                f"{self.relay_cpu_seconds * per_email:15.2f} {self.sessions:9}")  # fmt: skip


def printroom_message() -> bytes:
    """A customer's order_accepted email as printroom builds it (HTML and text), its Message-ID to be replaced."""
    email = EmailActivities.from_settings(Settings()).assembler.assemble(
        sample_request("order_accepted"), "customer", to=["marie@example.org"], cc=[], now=datetime.now(timezone.utc)
    )
    return email.data.replace(email.message_id.encode(), b"<MESSAGE-ID>")


async def leg(name: str, settings: SmtpSettings, template: bytes, emails: int, in_flight: int, tag: str, relay_pid: int) -> Leg:
    transport = SmtpTransport(settings)

    async def one(n: int) -> None:
        data = template.replace(b"<MESSAGE-ID>", f"<reuse.{tag}.{n}@example.com>".encode())
        await transport.send(data, envelope_from="printroom@example.com", recipients=["marie@example.org"])

    relay_before, started, cpu_started = cpu_seconds(relay_pid), time.monotonic(), time.process_time()
    await at_most(in_flight, emails, one)
    await transport.close()
    seconds, cpu = time.monotonic() - started, time.process_time() - cpu_started
    return Leg(name, emails, seconds, cpu, cpu_seconds(relay_pid) - relay_before, transport.opened)


async def main(emails: int, in_flight: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="printroom-bench-smtp-"))
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(workdir / "ca.pem"))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(workdir / "relay.pem"))
    port, arrived = free_port(), []
    relay = SinkProcess(port, lambda message_id, _: arrived.append(message_id),
                        ("--starttls", str(workdir / "relay.pem"), "--auth", f"{USER}:{PASSWORD}"))  # fmt: skip
    await relay.start()
    assert relay.process is not None
    base = SmtpSettings(host="127.0.0.1", port=port, security="starttls", ca_file=workdir / "ca.pem", username=USER,
                        password=PASSWORD, max_connections=in_flight)  # fmt: skip
    reused = ("sessions reused (default settings)", base)
    per_email = ("a session per email (reuse off)", base.model_copy(update={"max_messages_per_connection": 1}))
    template = printroom_message()
    try:
        for name, settings in (reused, per_email):  # warm-up: imports, first handshakes
            await leg(name, settings, template, 50, in_flight, "w", relay.process.pid)
        half = emails // 2
        legs = []
        for k, (name, settings) in enumerate((reused, per_email, per_email, reused)):  # ABBA
            legs.append(await leg(name, settings, template, half, in_flight, str(k), relay.process.pid))
    finally:
        await relay.stop()
    pooled, fresh = legs[0] + legs[3], legs[1] + legs[2]
    assert len(arrived) == 100 + 4 * (emails // 2), f"{len(arrived)} arrived"
    print(f"{pooled.emails + fresh.emails} emails through SmtpTransport to an aiosmtpd relay process (STARTTLS, trustme "
          f"certificate, AUTH PLAIN), {in_flight} in flight; {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")  # fmt: skip
    print(f"{'':34} {'emails/s':>9} {'CPU ms/email':>13} {'relay CPU ms/e':>15} {'sessions':>9}")
    for row in (pooled.row(), fresh.row(), ratios(pooled, fresh)):
        print(row)


def ratios(pooled: Leg, fresh: Leg) -> str:
    throughput = (pooled.emails / pooled.seconds) / (fresh.emails / fresh.seconds)
    return (f"reused/per email: emails/s {throughput:.2f}, CPU per email {pooled.cpu_seconds / fresh.cpu_seconds:.2f}, "
            f"relay CPU per email {pooled.relay_cpu_seconds / fresh.relay_cpu_seconds:.2f}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.emails, args.in_flight))
