"""printroom: a print room's order emails on Temporal, as a plugin for any worker (`PrintroomPlugin`).

    client = await Client.connect("localhost:7233", plugins=[PrintroomPlugin("printroom.toml")])

The root package is the ground the layers stand on (models, settings); its subpackages, top-down: `cli`, `worker`,
`workflows` and `activities`, `statemachines` and `templates`. Imports only run downward."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

TASK_QUEUE = "printroom"

if TYPE_CHECKING:
    from printroom.worker.plugin import PrintroomPlugin

__all__ = ["TASK_QUEUE", "PrintroomPlugin"]


def __getattr__(name: str) -> Any:
    # Lazy: workflow sandboxes import `printroom` for its models and must not pull in the worker, SMTP and Jinja.
    if name == "PrintroomPlugin":
        from printroom.worker.plugin import PrintroomPlugin

        return PrintroomPlugin
    raise AttributeError(f"module 'printroom' has no attribute {name!r}")
