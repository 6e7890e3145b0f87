"""A job's ``output``: its own log lines, captured while it runs.

Every ``qfjobs`` log record made while a job runs in this process carries the
job id (a filter adds it from a context variable), goes to the worker's
stderr with the id first, and is collected for the job's ``output`` with
secrets redacted. The collected lines are also written, one system call
each, to a spool file when one is given, so that they outlive a work horse
that is killed (see :mod:`qfjobs.tasks.workdir`).
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from io import FileIO
from pathlib import Path

from qfjobs.qgis.redaction import redact

current_job_id: ContextVar[str] = ContextVar("qfjobs_job_id", default="-")

#: Output beyond this many characters is cut, with a note.
MAX_OUTPUT_CHARS = 2_000_000
LINE_FORMAT = "%(job_id)s %(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%H:%M:%S"
TRUNCATED_NOTE = "[output truncated]"


class JobContextFilter(logging.Filter):
    """Adds ``job_id`` to every record and redacts secrets from the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.job_id = current_job_id.get()
        return True


class OutputCollector(logging.Handler):
    def __init__(self, job_id: str, spool: FileIO | None = None) -> None:
        super().__init__(logging.INFO)
        self.job_id = job_id
        self.spool = spool
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
            if not self.truncated:
                self._spool(TRUNCATED_NOTE)
            self.truncated = True
            return
        self.lines.append(line)
        self.size += len(line) + 1
        self._spool(line)

    def text(self) -> str:
        text = "\n".join(self.lines)
        if self.truncated:
            text += "\n" + TRUNCATED_NOTE
        return text + "\n" if text else ""

    def _spool(self, line: str) -> None:
        if self.spool is not None:
            self.spool.write((line + "\n").encode("utf-8", errors="replace"))


def format_line(job_id: str, log: logging.Logger, message: str, *args: object) -> str:
    """One INFO line of ``log`` as a job's output holds it, ending with a newline.

    For lines a job's ``output`` gets from outside its run (a stop marked by
    the API or by the worker that ended the run).
    """
    record = log.makeRecord(log.name, logging.INFO, "", 0, message, args, None)
    record.job_id = job_id
    return redact(logging.Formatter(LINE_FORMAT, DATE_FORMAT).format(record)) + "\n"


@contextmanager
def capture(job_id: str, spool: Path | None = None) -> Iterator[OutputCollector]:
    """Collect the job's log lines from the ``qfjobs`` loggers.

    With ``spool``, every collected line is also appended to that file as it
    is written (unbuffered), for the worker to read if the run is killed.
    """
    spool_file = spool.open("ab", buffering=0) if spool is not None else None
    collector = OutputCollector(job_id, spool_file)
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
        if spool_file is not None:
            spool_file.close()


def configure_process_logging(level: int = logging.INFO) -> None:
    """stderr logging for servers and workers, job id first on job lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LINE_FORMAT, DATE_FORMAT))
    handler.addFilter(JobContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
