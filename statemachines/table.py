"""A state table type shared by every lifecycle: rows, the `transitions` Machine that decides moves, a drawing."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any, Literal

from transitions import EventData, Machine

Actor = Literal["operator", "approver", "system"]


@dataclass(frozen=True)
class Transition:
    """One row: `trigger`, sent by `by`, moves from any of `sources` to `dest` and fires `emails` (template names)."""

    trigger: str
    sources: tuple[str, ...]
    dest: str
    emails: tuple[str, ...] = ()
    by: Actor = "operator"


@dataclass(frozen=True)
class StateTable:
    """A lifecycle as data: its states, where it starts, where it ends, and the transitions between.
    It decides nothing itself: `Lifecycle` builds a Machine from it, and the Machine decides."""

    name: str
    states: tuple[str, ...]
    initial: str
    final: frozenset[str]
    transitions: tuple[Transition, ...]
    emails_on_start: tuple[str, ...] = ()
    _by_trigger: dict[str, tuple[Transition, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_trigger: dict[str, list[Transition]] = {}
        for row in self.transitions:
            unknown = {*row.sources, row.dest} - set(self.states)
            if unknown:
                raise ValueError(f"{self.name}: transition {row.trigger!r} names unknown states {sorted(unknown)}")
            by_trigger.setdefault(row.trigger, []).append(row)
        if self.initial not in self.states or not self.final <= set(self.states):
            raise ValueError(f"{self.name}: initial and final states must be listed in states")
        object.__setattr__(self, "_by_trigger", {k: tuple(v) for k, v in by_trigger.items()})

    @property
    def triggers(self) -> tuple[str, ...]:
        return tuple(self._by_trigger)

    def triggers_by(self, actor: Actor) -> tuple[str, ...]:
        """The triggers that `actor` may ever send (operators never send the system's own steps)."""
        return tuple(t for t, rows in self._by_trigger.items() if any(r.by == actor for r in rows))

    def email_triggers(self) -> tuple[str, ...]:
        """Every email trigger (template name) this lifecycle can fire, in table order."""
        seen = dict.fromkeys(self.emails_on_start)
        for row in self.transitions:
            seen.update(dict.fromkeys(row.emails))
        return tuple(seen)

    def to_mermaid(self) -> str:
        """The table as a Mermaid state diagram; edge labels read `trigger / email, email`."""
        lines = ["stateDiagram-v2"]
        start = ", ".join(self.emails_on_start)
        lines.append(f"    [*] --> {self.initial}" + (f": {start}" if start else ""))
        for row in self.transitions:
            label = row.trigger + (f" / {', '.join(row.emails)}" if row.emails else "")
            for source in row.sources:
                lines.append(f"    {source} --> {row.dest}: {label}")
        for state in self.states:
            if state in self.final:
                lines.append(f"    {state} --> [*]")
        return "\n".join(lines) + "\n"


# Told of every move: the row followed, the state it left, and what the sender said (by, comment, ...).
MoveListener = Callable[[Transition, str, Mapping[str, Any]], None]


def _sent_by(actor: Actor, event: EventData) -> bool:
    return event.kwargs.get("actor") == actor


def _followed(row: Transition, event: EventData) -> None:
    decision: _Decision = event.model  # type: ignore[assignment]  # the model is always a _Decision
    decision.lifecycle.moved(row, event.transition.source if event.transition else "", decision.state, event.kwargs)


# The Machine's name, which `transitions` puts before each of its log lines: how printroom's lines are told apart.
MACHINE_NAME_PREFIX = "printroom "


class _Decision:
    """The model of one decision's Machine. The Machine binds each trigger (and `may_<trigger>`) as an attribute
    of its model, which keeps the Machine alive as long as the model lives: this object lives for one decision."""

    state: str

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle


@lru_cache(maxsize=None)
def _check_trigger_names(table: StateTable) -> None:
    """The Machine binds each trigger as a method of its model; a trigger named like one of the model's would not be."""
    if clash := sorted(set(table.triggers) & {*dir(_Decision), "trigger", "state", "lifecycle"}):
        raise ValueError(f"{table.name}: trigger(s) {clash} are names of the Machine's model; rename them")


@lru_cache(maxsize=None)
def _allowed(table: StateTable, state: str, actor: Actor) -> tuple[str, ...]:
    """The Machine's answer to "what may `actor` send at `state`", kept: an evicted order asks it on its way out, and
    every `state` query asks it, where building a Machine each time cost more than the rest of the order's work."""
    lifecycle = Lifecycle(table, lambda *_: None, state)
    decision = lifecycle.machine()
    return tuple(t for t in table.triggers_by(actor) if _may(decision, t, actor=actor))


def _may(decision: _Decision, trigger: str, **event: Any) -> bool:
    """The Machine's `may_<trigger>`; a trigger it was not given (no row takes it from this state) may not be sent."""
    may = getattr(decision, f"may_{trigger}", None)
    return may is not None and bool(may(**event))


class Lifecycle:
    """One instance of a table, at its current state. Every decision is the Machine's: `transitions` builds one
    over the rows that leave the current state, for each question or move (0.03 ms; a Machine kept for the life of
    the workflow would cost about 25 KB in every order a worker holds in memory). Who may send a trigger is a
    condition of its row; a move that happens calls `listener` from the Machine's `after` callback, which is where
    the caller queues the row's emails."""

    def __init__(self, table: StateTable, listener: MoveListener, state: str | None = None) -> None:
        _check_trigger_names(table)
        if state is not None and state not in table.states:
            raise ValueError(f"{table.name}: {state!r} is not one of its states {list(table.states)}")
        self.table, self._listener = table, listener
        self.state = state or table.initial

    def machine(self) -> _Decision:
        """A Machine at the current state over the rows that leave it (no other row can decide a move from here):
        its model answers `may_<trigger>` and moves by `<trigger>` for those rows' triggers, and has neither for a
        trigger no row takes from here. Built from these rows only, it costs a fifth of one over the whole table."""
        decision = _Decision(self)
        rows = [row for row in self.table.transitions if self.state in row.sources]
        transitions = [
            {
                "trigger": row.trigger,
                "source": self.state,
                "dest": row.dest,
                "conditions": [partial(_sent_by, row.by)],
                "after": [partial(_followed, row)],
            }
            for row in rows
        ]
        Machine(
            model=decision,
            states=list(dict.fromkeys([self.state, *(row.dest for row in rows)])),
            transitions=transitions,
            initial=self.state,
            auto_transitions=False,  # no `to_<state>()`: every move is a row of the table
            ignore_invalid_triggers=False,
            send_event=True,
            name=MACHINE_NAME_PREFIX + self.table.name,
        )
        return decision

    @property
    def closed(self) -> bool:
        return self.state in self.table.final

    def moved(self, row: Transition, source: str, dest: str, detail: Mapping[str, Any]) -> None:
        """The Machine moved (its `after` callback): the new state is this lifecycle's before the listener hears."""
        self.state = dest
        self._listener(row, source, detail)

    def may(self, trigger: str, actor: Actor) -> bool:
        """Would the Machine let `actor` send `trigger` now?"""
        return trigger in self.allowed_triggers(actor)

    def allowed_triggers(self, actor: Actor) -> list[str]:
        """What `actor` may send now, in table order, as the Machine answers it. The answer depends on the table,
        the state and the actor only: asked once per worker."""
        return list(_allowed(self.table, self.state, actor))

    def follow(self, trigger: str, actor: Actor, **detail: Any) -> str | None:
        """Move by `trigger` if the Machine lets `actor` send it now and return None; otherwise change nothing
        and return the reason, for the sender. An unknown or forbidden trigger is answered, never raised; what
        the listener raises (a bug of the caller's) is not caught."""
        known = self.table.triggers_by(actor)
        if trigger not in known:
            return f"unknown trigger {trigger!r}; known: {', '.join(known)}"
        decision = self.machine()
        if _may(decision, trigger, actor=actor, **detail) and getattr(decision, trigger)(actor=actor, **detail):
            return None
        allowed = ", ".join(self.allowed_triggers(actor))  # refused: still at the same state
        nothing = f"nothing (the {self.table.name} is closed)" if self.closed else "nothing"
        return f"{trigger!r} is not allowed while the {self.table.name} is {self.state!r}; allowed now: {allowed or nothing}"
