"""A private PostgreSQL server from Debian's package, started by the tests that need one (installed with apt when
missing and the tests run as root), in a temporary directory on a port of its own; stopped and started again at
will, to play an outage."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

USER = "printroom"


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def ensure_postgres_installed() -> str | None:
    """Installs Debian's postgresql if it is missing; returns why it cannot be had, or None."""
    if postgres_bin() is not None:
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "postgresql is not installed, and installing it needs root and apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
    install = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"], env=env, capture_output=True, text=True)
    return None if install.returncode == 0 else f"apt-get install postgresql failed:\n{install.stdout[-2000:]}{install.stderr[-2000:]}"


class PostgresServer:
    """initdb (trust authentication, on 127.0.0.1 only), then start/stop on the same data directory."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="printroom-postgres-"))
        self.data, self.log = self.root / "data", self.root / "postgres.log"
        bin_dir = postgres_bin()
        assert bin_dir is not None
        self.bin = bin_dir
        # PostgreSQL refuses to run as root: as root, it runs as Debian's `postgres` user.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", USER, "-E", "UTF8", "--locale", "C.UTF-8")

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop()
        except RuntimeError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run([*self._as, str(self.bin / program), *args], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{program} failed: {done.stdout}{done.stderr}\n{log}")
