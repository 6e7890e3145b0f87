"""Which task runs which job type."""

from qfjobs.errors import InvalidJobError
from qfjobs.models import JobType
from qfjobs.tasks.base import Task
from qfjobs.tasks.delta_apply import DeltaApply
from qfjobs.tasks.package import Package
from qfjobs.tasks.process_projectfile import ProcessProjectfile

TASKS: dict[str, Task] = {
    JobType.PROCESS_PROJECTFILE: ProcessProjectfile(),
    JobType.PACKAGE: Package(),
    JobType.DELTA_APPLY: DeltaApply(),
}


def task_for(job_type: str) -> Task:
    try:
        return TASKS[job_type]
    except KeyError:
        raise InvalidJobError(
            f'Job type "{job_type}" cannot run on this server version'
        ) from None
