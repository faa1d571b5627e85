"""Temporal out of reach, said to a person: the address, the reason in words, and what to check. The SDK's own text
is the Rust core's (`tonic::transport::Error(Transport, ConnectError(...))`), which tells an administrator nothing."""

from __future__ import annotations

import re

# What the core's text says, in the words of someone who has to fix it; the first match wins.
_REASONS = (
    (r"ConnectionRefused|Connection refused", "connection refused"),
    (r"dns error|failed to lookup address", "the host name is not found"),
    (r"(?i)timed? ?out|deadline", "no answer in time"),
    (r"(?i)certificate|tls|ssl|handshake", "TLS failed"),
    (r"(?i)unauthenticated|permission|api key", "the credentials were refused"),
    (r"get_system_info|Unimplemented|404", "what answers there is not Temporal's gRPC"),
)


class TemporalUnreachable(RuntimeError):
    """No client could be made; the message is one line naming the address and what to check."""


def unreachable(address: str, error: BaseException) -> TemporalUnreachable:
    text = str(error)
    reason = next((words for pattern, words in _REASONS if re.search(pattern, text)), "the connection failed")
    return TemporalUnreachable(
        f"cannot reach Temporal at {address} ({reason}): is `make run` running, or is `temporal.address` right?"
    )
