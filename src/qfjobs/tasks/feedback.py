"""A job's ``feedback``: the structured result clients read.

The envelope follows QFieldCloud's (``feedback_version`` 2.0): every step of
the workflow with its ``stage`` (0 not reached, 1 started and failed, 2 done),
``outputs`` per completed step, and on failure ``error``, ``error_type``,
``error_class``, ``error_stack`` and ``error_origin``.
"""

import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from qfjobs.errors import QfjobsError

logger = logging.getLogger(__name__)

FEEDBACK_VERSION = "2.0"


@dataclass(frozen=True)
class Workflow:
    id: str
    name: str
    #: ``(step id, step name)`` in order.
    steps: tuple[tuple[str, str], ...]


class Feedback:
    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow
        self.steps: list[dict[str, Any]] = [
            {"id": step_id, "name": name, "stage": 0, "returns": {}}
            for step_id, name in workflow.steps
        ]
        self.outputs: dict[str, dict[str, Any]] = {}
        self.error: dict[str, Any] | None = None

    @contextmanager
    def step(self, step_id: str) -> Iterator[dict[str, Any]]:
        """Run one step; yields the dict of its outputs to fill."""
        record = self._record(step_id)
        record["stage"] = 1
        logger.info("step %s: %s", step_id, record["name"])
        outputs: dict[str, Any] = {}
        yield outputs
        record["stage"] = 2
        self.outputs[step_id] = outputs

    def _record(self, step_id: str) -> dict[str, Any]:
        for record in self.steps:
            if record["id"] == step_id:
                return record
        raise KeyError(f"step {step_id!r} is not part of {self.workflow.id}")

    def fail(
        self, exc: BaseException, *, error_type: str | None = None, origin: str = "job"
    ) -> None:
        if error_type is None:
            error_type = exc.error_type if isinstance(exc, QfjobsError) else "UNKNOWN"
        self.error = {
            "error": str(exc) or type(exc).__name__,
            "error_type": error_type,
            "error_class": type(exc).__name__,
            "error_stack": traceback.format_tb(exc.__traceback__),
            "error_origin": origin,
        }
        if isinstance(exc, QfjobsError):
            self.error["error_code"] = exc.code

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "feedback_version": FEEDBACK_VERSION,
            "workflow_version": FEEDBACK_VERSION,
            "workflow_id": self.workflow.id,
            "workflow_name": self.workflow.name,
            "steps": self.steps,
            "outputs": self.outputs,
        }
        if self.error:
            data.update(self.error)
        return data
