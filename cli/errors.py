"""What a command says when what was asked cannot be done: caught by `printroom` and printed, never a traceback."""


class CommandRefused(Exception):
    """The workflow, Temporal, a file or the settings said no; the message says why and what to do."""
