"""A job's ``output``: its own log lines, captured while it runs.

Every ``qfjobs`` log record made while a job runs in this process carries the
job id (a filter adds it from a context variable), goes to the worker's
stderr with the id first, and is collected for the job's ``output`` with
secrets redacted.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from qfjobs.qgis.redaction import redact

current_job_id: ContextVar[str] = ContextVar("qfjobs_job_id", default="-")

#: Output beyond this many characters is cut, with a note.
MAX_OUTPUT_CHARS = 2_000_000
LINE_FORMAT = "%(job_id)s %(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%H:%M:%S"


class JobContextFilter(logging.Filter):
    """Adds ``job_id`` to every record and redacts secrets from the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.job_id = current_job_id.get()
        return True


class OutputCollector(logging.Handler):
    def __init__(self, job_id: str) -> None:
        super().__init__(logging.INFO)
        self.job_id = job_id
        self.lines: list[str] = []
        self.size = 0
        self.truncated = False
        self.setFormatter(logging.Formatter(LINE_FORMAT, DATE_FORMAT))
        self.addFilter(JobContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        if current_job_id.get() != self.job_id:
            return
        line = redact(self.format(record))
        if self.size + len(line) > MAX_OUTPUT_CHARS:
            self.truncated = True
            return
        self.lines.append(line)
        self.size += len(line) + 1

    def text(self) -> str:
        text = "\n".join(self.lines)
        if self.truncated:
            text += "\n[output truncated]"
        return text + "\n" if text else ""


@contextmanager
def capture(job_id: str) -> Iterator[OutputCollector]:
    """Collect the job's log lines from the ``qfjobs`` loggers."""
    collector = OutputCollector(job_id)
    token = current_job_id.set(job_id)
    root = logging.getLogger("qfjobs")
    previous_level = root.level
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
    root.addHandler(collector)
    try:
        yield collector
    finally:
        root.removeHandler(collector)
        root.setLevel(previous_level)
        current_job_id.reset(token)


def configure_process_logging(level: int = logging.INFO) -> None:
    """stderr logging for servers and workers, job id first on job lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LINE_FORMAT, DATE_FORMAT))
    handler.addFilter(JobContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
