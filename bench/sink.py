"""The benchmark's SMTP server, in a process of its own as a real mail server is: prints `<Message-ID> <monotonic>`."""

from __future__ import annotations

import asyncio
import sys
import time

from aiosmtpd.controller import Controller


class Sink:
    async def handle_DATA(self, server, session, envelope) -> str:
        arrived = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process on the machine
        for line in envelope.content.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                sys.stdout.write(f"{line.split(b':', 1)[1].strip().decode()} {arrived}\n")
                sys.stdout.flush()
                break
        return "250 OK"


async def main(port: int) -> None:
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the benchmark closes stdin
    controller.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
