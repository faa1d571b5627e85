"""An operator's discard of a held draft, as every tool of printroom asks it (the CLI, `printroom web`): the
`discard_draft` signal, then the order's state read back until the worker applied or refused it. A signal is never
answered, so a refusal is told apart by being new (refusals are a bounded list: not by its length)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowHandle

from printroom.models import OrderState, RefusedRequest

# The signal is applied by the worker's next workflow task: read back this often, this many times.
CHECK_EVERY = 0.1


async def discard_and_confirm(
    handle: WorkflowHandle[Any, Any], draft_id: str, reason: str, by: str, *, checks: int = 100, rpc_timeout: timedelta | None = None
) -> OrderState | RefusedRequest | None:
    """The order's state once the draft is gone; the refusal (its reason, and its words for a page in another
    language); or None when no worker applied it in time.
    Raises temporalio's RPCError (Temporal out of reach, no such order)."""
    state = await handle.query("state", result_type=OrderState, rpc_timeout=rpc_timeout)
    before = {(r.kind, r.payload, r.at) for r in state.refused}
    await handle.signal("discard_draft", {"draft_id": draft_id, "reason": reason, "by": by}, rpc_timeout=rpc_timeout)
    for _ in range(checks):
        state = await handle.query("state", result_type=OrderState, rpc_timeout=rpc_timeout)
        new = [r for r in state.refused if (r.kind, r.payload, r.at) not in before and r.kind == "discard_draft"]
        if new:
            return new[-1]
        if all(d.id != draft_id for d in state.drafts_pending):
            return state
        await asyncio.sleep(CHECK_EVERY)
    return None
