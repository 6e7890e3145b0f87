"""A job run's private working folder, and what a stopped run leaves there.

The work horse creates the folder in the system temporary directory with a
name starting with the job id (``qfjobs-<job id>-``), and spools every log
line of the job into ``output.log`` in it as the line is written. A horse
ended by a stop request (RQ kills it with SIGKILL) or that died cannot write
its output to the store; the worker that saw it end finds the folder by the
job id, reads the spooled lines for the job's ``output`` and removes the
folder.

Known limitation: this works only where the folder is visible, i.e. for the
worker on the machine that ran the horse. A stop marked by the API because
no worker held the job, or a job failed by the reconciler (its worker gone
with the horse, or on another machine), keeps none of the run's lines, and
such a run's folder stays in the temporary directory.
"""

import logging
import shutil
import tempfile
import uuid
from pathlib import Path

logger = logging.getLogger(__name__)

SPOOL_NAME = "output.log"


def create(job_id: uuid.UUID) -> Path:
    """A new private folder (mode 0700) for one run of the job."""
    return Path(tempfile.mkdtemp(prefix=_prefix(job_id)))


def spool_path(workdir: Path) -> Path:
    """Where the run spools its log lines."""
    return workdir / SPOOL_NAME


def leftovers(job_id: uuid.UUID) -> list[Path]:
    """The job's folders still on this machine, oldest first."""
    folders = [
        path
        for path in Path(tempfile.gettempdir()).glob(f"{_prefix(job_id)}*")
        if path.is_dir() and not path.is_symlink()
    ]
    return sorted(folders, key=_modified_at)


def read_spooled(job_id: uuid.UUID, limit: int) -> str:
    """The lines the job's ended runs spooled on this machine, at most ``limit``.

    Characters beyond ``limit`` are cut with a note, as the output of a run
    that ends by itself is.
    """
    parts: list[str] = []
    for folder in leftovers(job_id):
        try:
            parts.append(spool_path(folder).read_text("utf-8", errors="replace"))
        except OSError:
            continue
    text = "".join(parts)
    if len(text) > limit:
        text = text[: text.rfind("\n", 0, limit) + 1] + "[output truncated]\n"
    return text


def remove_leftovers(job_id: uuid.UUID) -> None:
    """Delete the folders the job's ended runs left on this machine."""
    for folder in leftovers(job_id):
        shutil.rmtree(folder, ignore_errors=True)
        logger.info("%s: removed the working folder of an ended run", job_id)


def _modified_at(folder: Path) -> float:
    try:
        return folder.stat().st_mtime
    except OSError:  # removed meanwhile: it holds nothing to read
        return 0.0


def _prefix(job_id: uuid.UUID) -> str:
    return f"qfjobs-{job_id}-"
