"""Debian's Chromium driven by Playwright, for the Web UI tests: installed with apt when missing (never by
`playwright install`, which downloads from the internet)."""

from __future__ import annotations

import os
import shutil
import subprocess

CHROMIUM = "/usr/bin/chromium"
# Headless and quiet: no GPU, no QUIC, nothing fetched in the background.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def ensure_chromium() -> str | None:
    """Installs Debian's chromium if it is missing; returns why it cannot be had, or None."""
    if os.path.exists(CHROMIUM):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "chromium is not installed, and installing it needs root and apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
    install = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"], env=env, capture_output=True, text=True
    )
    return None if install.returncode == 0 else f"apt-get install chromium failed:\n{install.stdout[-2000:]}{install.stderr[-2000:]}"
