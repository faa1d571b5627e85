"""What `printroom web` tells its administrator: each visitor sent away (Temporal out of reach, a link refused), with
the reason and never the link's token, at most one line per kind a minute, so a crawler cannot flood the log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("printroom.web")


class Notices:
    """At most one line per kind of event every `every` seconds; the next says how many were held back meanwhile."""

    def __init__(self, every: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._every, self._clock = every, clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warn(self, kind: str, message: str) -> None:
        now = self._clock()
        if kind in self._last and now - self._last[kind] < self._every:
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        held = self._held.pop(kind, 0)
        self._last[kind] = now
        log.warning("%s%s", message, f" ({held} more like it in the last {self._every:.0f}s)" if held else "")
