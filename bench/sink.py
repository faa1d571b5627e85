"""The benchmark's SMTP server, in a process of its own as a real mail server is: prints `<Message-ID> <monotonic>`."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from email.parser import BytesHeaderParser
from pathlib import Path

from aiosmtpd.controller import Controller


class Sink:
    async def handle_DATA(self, server, session, envelope) -> str:
        arrived = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process on the machine
        # The header as a mail client reads it: a long Message-ID is folded onto the next line.
        message_id = "".join(str(BytesHeaderParser().parsebytes(envelope.content).get("Message-ID", "")).split())
        sys.stdout.write(f"{message_id} {arrived}\n")
        sys.stdout.flush()
        return "250 OK"


async def main(port: int) -> None:
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the benchmark closes stdin
    controller.stop()


class SinkProcess:
    """Runs this file as a process of its own, and calls `on_arrival(message_id, arrived)` for every message."""

    def __init__(self, port: int, on_arrival: Callable[[str, float], None]) -> None:
        self.port, self.on_arrival = port, on_arrival
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__)), str(self.port),
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
    asyncio.run(main(int(sys.argv[1])))
