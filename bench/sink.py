"""The benchmark's SMTP server, in a process of its own as a real mail server is: prints `<Message-ID> <monotonic>`.
With a certificate (`--starttls PEM`, key and chain) and `--auth USER:PASSWORD` it is a relay as print rooms have:
STARTTLS and AUTH required."""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl
import sys
import time
from collections.abc import Callable
from email.parser import BytesHeaderParser
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Sink:
    async def handle_DATA(self, server, session, envelope) -> str:
        arrived = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process on the machine
        # The header as a mail client reads it: a long Message-ID is folded onto the next line.
        message_id = "".join(str(BytesHeaderParser().parsebytes(envelope.content).get("Message-ID", "")).split())
        sys.stdout.write(f"{message_id} {arrived}\n")
        sys.stdout.flush()
        return "250 OK"


def relay_options(certificate: str | None, credentials: str | None) -> dict[str, object]:
    """Controller options for STARTTLS with this certificate and AUTH with these credentials, both required."""
    if certificate is None:
        return {}
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate)
    user, password = (credentials or ":").encode().split(b":", 1)

    def authenticate(server: object, session: object, envelope: object, mechanism: str, auth_data: object) -> AuthResult:
        return AuthResult(success=(auth_data.login, auth_data.password) == (user, password), handled=False)  # type: ignore[attr-defined]

    return {"tls_context": context, "require_starttls": True, "auth_required": True, "authenticator": authenticate}


async def main(port: int, certificate: str | None = None, credentials: str | None = None) -> None:
    controller = Controller(Sink(), hostname="127.0.0.1", port=port, **relay_options(certificate, credentials))  # type: ignore[arg-type]
    controller.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the benchmark closes stdin
    controller.stop()


class SinkProcess:
    """Runs this file as a process of its own, and calls `on_arrival(message_id, arrived)` for every message."""

    def __init__(self, port: int, on_arrival: Callable[[str, float], None], options: tuple[str, ...] = ()) -> None:
        self.port, self.on_arrival, self.options = port, on_arrival, options  # options: as the command line takes them
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__)), str(self.port), *self.options,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self.process.stdout is not None
        assert (await self.process.stdout.readline()).strip() == b"ready"
        self._reader = asyncio.create_task(self._read(self.process.stdout))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            message_id, arrived = line.decode().rsplit(" ", 1)
            self.on_arrival(message_id, float(arrived))

    async def stop(self) -> None:
        """Closing stdin stops the server; every line it printed has been handled when this returns."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.close()
        await self.process.wait()
        if self._reader:
            await self._reader


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--starttls", metavar="PEM", help="the server's key and certificate chain")
    parser.add_argument("--auth", metavar="USER:PASSWORD")
    args = parser.parse_args()
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd warns about its own AUTH API on every login
    asyncio.run(main(args.port, args.starttls, args.auth))
