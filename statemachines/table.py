"""A state table type shared by every lifecycle: rows, a `transitions` Machine built from them, and a Mermaid drawing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from transitions import Machine

Actor = Literal["operator", "approver", "system"]


@dataclass(frozen=True)
class Transition:
    """One row: `trigger` moves the order from any of `sources` to `dest` and fires `emails` (template names)."""

    trigger: str
    sources: tuple[str, ...]
    dest: str
    emails: tuple[str, ...] = ()
    by: Actor = "operator"


@dataclass(frozen=True)
class StateTable:
    """A lifecycle: its states, where it starts, where it ends, and the transitions between."""

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
        """The triggers that `actor` may send (operators never send the system's own steps)."""
        return tuple(t for t, rows in self._by_trigger.items() if any(r.by == actor for r in rows))

    def transition(self, trigger: str, source: str) -> Transition | None:
        """The row that `trigger` follows from `source`, or None if the table forbids it."""
        return next((r for r in self._by_trigger.get(trigger, ()) if source in r.sources), None)

    def allowed_from(self, source: str) -> tuple[str, ...]:
        return tuple(t for t, rows in self._by_trigger.items() if any(source in r.sources for r in rows))

    def email_triggers(self) -> tuple[str, ...]:
        """Every email trigger (template name) this lifecycle can fire, in table order."""
        seen = dict.fromkeys(self.emails_on_start)
        for row in self.transitions:
            seen.update(dict.fromkeys(row.emails))
        return tuple(seen)

    def build_machine(self, model: object, state: str | None = None) -> Machine:
        """A `transitions` Machine over `model`; no auto `to_<state>` triggers, unknown triggers raise."""
        return Machine(
            model=model,
            states=list(self.states),
            transitions=[
                {"trigger": r.trigger, "source": list(r.sources), "dest": r.dest} for r in self.transitions
            ],
            initial=state or self.initial,
            auto_transitions=False,
            ignore_invalid_triggers=False,
        )

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
