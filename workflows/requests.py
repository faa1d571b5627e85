"""What a workflow does with payloads whose sender gets no answer (its input, signals): validated into their model
inside the workflow, and a bad one refused visibly (recorded with the reason, logged), never dropped."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.exceptions import ApplicationError

from printroom.models import RefusedRequest, validation_problems

MAX_REFUSED_KEPT = 100
MAX_PAYLOAD_SHOWN = 500

Input = TypeVar("Input", bound=BaseModel)


class WorkflowInput(Generic[Input]):
    """The input, validated as the workflow starts; `fail()` ends a run whose input is invalid, naming every field."""

    def __init__(self, model: type[Input], raw: Any, what: str) -> None:
        self.what, self.problems, self.value = what, [], None
        try:
            self.value: Input | None = model.model_validate(raw)
        except ValidationError as error:
            self.problems: list[str] = validation_problems(error)

    @property
    def invalid(self) -> str:
        return f"the {self.what} is invalid: " + "; ".join(self.problems)

    def fail(self) -> ApplicationError:
        return ApplicationError(
            f"invalid {self.what} input: " + "; ".join(self.problems) + ". Fix the JSON and start the workflow again.",
            type="InvalidOrder" if self.what == "order" else "InvalidInput",
            non_retryable=True,
        )


class Refusals:
    """Requests that were not applied, with their reasons: the `state` query shows the last MAX_REFUSED_KEPT."""

    def __init__(self, where: Callable[[], str], changed: Callable[[], None]) -> None:
        self._where, self._changed = where, changed
        self.items: list[RefusedRequest] = []

    def refuse(self, kind: str, payload: Any, reason: str, words: str = "", values: Mapping[str, object] | None = None) -> None:
        shown = repr(payload)[:MAX_PAYLOAD_SHOWN]
        workflow.logger.warning("%s refused %s: %s (payload %s)", self._where(), kind, reason, shown)
        named = {name: str(value) for name, value in (values or {}).items()}
        self.items.append(RefusedRequest(kind=kind, reason=reason, payload=shown, at=workflow.now(), words=words, values=named))
        del self.items[:-MAX_REFUSED_KEPT]
        self._changed()

    def validate(self, kind: str, model: type[Input], payload: Any, input: WorkflowInput[Any]) -> Input | None:
        """The payload as its model, or None once refused (so is every payload of a workflow with invalid input)."""
        if input.value is None:
            self.refuse(kind, payload, input.invalid)
            return None
        try:
            return model.model_validate(payload)
        except ValidationError as error:
            self.refuse(kind, payload, "malformed payload: " + "; ".join(validation_problems(error)))
            return None


def check_update(model: type[Input], payload: Any, input: WorkflowInput[Any]) -> Input:
    """For an update's validator: the payload as its model, or a ValueError the caller reads (nothing recorded)."""
    if input.value is None:
        raise ValueError(input.invalid)
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise ValueError("malformed payload: " + "; ".join(validation_problems(error))) from None
