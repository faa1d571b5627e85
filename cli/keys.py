"""`printroom keys new`: a fresh encryption key added to the key file, where, being the last, it becomes the one that
encrypts unless temporal.encrypt_with names another (a rollout over several hosts: decrypt-only first)."""

from __future__ import annotations

import os
from pathlib import Path

from printroom.codec import KeyRing, new_key_entry

HEADER = (
    "# printroom's Temporal encryption keys, one ID:BASE64 a line: every one decrypts; the last one encrypts, unless\n"
    "# temporal.encrypt_with names another (new keys on several hosts: everywhere first, then encrypt_with).\n"
    "# Keep a key while any order written with it may still be read (open orders, and closed ones within the\n"
    "# namespace's retention). Readable by the worker's user only (chmod 600).\n"
)


def add_key(path: Path) -> str:
    """Append a new key to `path` (made with mode 600 when missing; an existing file is read first, so one that
    others may read, or that holds a bad key, is refused untouched). Returns the new key's id."""
    taken = KeyRing.read(path).ids if path.exists() else []
    entry = new_key_entry(taken)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as file:
        if not taken:
            file.write(HEADER)
        elif not path.read_bytes().endswith(b"\n"):
            file.write("\n")
        file.write(entry + "\n")
    return entry.partition(":")[0]
