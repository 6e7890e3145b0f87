"""SQLite-based files (GeoPackage, SpatiaLite, MBTiles) without side effects.

A database in WAL journal mode makes SQLite create ``-wal`` and ``-shm``
files next to it when it is opened, even read-only, and the corpus warns
that some GeoPackages are in that mode. :class:`StagingArea` copies such a
file (and an existing ``-wal``, which may hold committed data) into a
private temporary folder and hands out the copy; files in the default
rollback-journal mode are opened in place, read-only, which writes nothing.
"""

import logging
import shutil
import sqlite3
import tempfile
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)

SQLITE_MAGIC = b"SQLite format 3\x00"
WAL_VERSION = 2


def is_sqlite_file(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def needs_staging(path: Path) -> bool:
    """True for a WAL-mode database, or one with a ``-wal`` file beside it."""
    if Path(f"{path}-wal").exists():
        return True

    try:
        with path.open("rb") as handle:
            header = handle.read(20)
    except OSError:
        return False
    return header[:16] == SQLITE_MAGIC and WAL_VERSION in (header[18], header[19])


class StagingArea:
    """A temporary folder for read-only copies; use as a context manager."""

    def __init__(self) -> None:
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._copies: dict[Path, Path] = {}

    def __enter__(self) -> "StagingArea":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
        self._copies.clear()

    def readable_path(self, path: Path) -> Path:
        """``path`` itself, or a staged copy when opening it would write."""
        if not needs_staging(path):
            return path

        if path not in self._copies:
            self._copies[path] = self._copy(path)
        return self._copies[path]

    def _copy(self, path: Path) -> Path:
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="qfjobs-stage-")

        target_dir = Path(self._folder.name) / str(len(self._copies))
        target_dir.mkdir()
        target = target_dir / path.name
        shutil.copyfile(path, target)
        wal = Path(f"{path}-wal")
        if wal.exists():
            shutil.copyfile(wal, Path(f"{target}-wal"))

        logger.debug("Staged WAL-mode database %s", path.name)
        return target


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection (``mode=ro``); raises ``sqlite3.Error``."""
    connection = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True)
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        connection.close()
        raise
    return connection
