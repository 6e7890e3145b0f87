"""Replacing data files atomically: one file, or a set such as a shapefile.

One file: the new content goes to a temporary file in the same directory, is
flushed to disk, and ``os.replace`` puts it in place. A crash leaves the old
file or the new one, plus perhaps a temporary file that recovery deletes.

A set of files (``.shp``, ``.shx``, ``.dbf``, and the stale ``.qix`` to delete)
cannot be renamed as one, so the swap is a small redo log:

1. the new files are written into a hidden staging directory next to the
   targets and flushed;
2. a manifest naming every file to replace or delete is written there and
   renamed into place: this rename is the commit point;
3. the files are moved over the targets one by one, then the staging directory
   is removed.

``recover_interrupted_swaps(directory)`` finishes step 3 for a staging directory
with a manifest (the swap had committed) and deletes one without (it had not).
The guarantee, stated honestly: every single file is always either old or new;
the set as a whole is either all old or all new once recovery has run. A crash
in the middle of step 3 leaves a mixed set on disk until then, so recovery runs
whenever a store opens a file in that directory, and the job runner should call
it for the project directory before it reads or uploads files after a crash.
"""

import json
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

logger = logging.getLogger(__name__)

STAGING_PREFIX = ".qfjobs-swap-"
TEMP_MARK = ".qfjobs-tmp-"
MANIFEST = "manifest.json"


def replace_file(target: Path, content: bytes) -> None:
    """Replace ``target`` with ``content`` atomically and durably."""
    temp = target.with_name(f".{target.name}{TEMP_MARK}{uuid.uuid4().hex}")
    try:
        _write_durably(temp, content)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise

    _sync_directory(target.parent)


def replace_file_set(directory: Path, files: Mapping[str, bytes | None]) -> None:
    """Replace (``bytes``) or delete (``None``) the named files as one unit."""
    for name in files:
        if not name or Path(name).name != name:
            raise ValueError(f"not a plain file name: {name!r}")

    staging = directory / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        _sync_directory(directory)
        for name, content in files.items():
            if content is not None:
                _write_durably(staging / name, content)

        manifest = {
            "replace": [name for name, content in files.items() if content is not None],
            "delete": [name for name, content in files.items() if content is None],
        }
        part = staging / (MANIFEST + ".part")
        _write_durably(part, json.dumps(manifest).encode())
        os.replace(part, staging / MANIFEST)
        _sync_directory(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    _roll_forward(staging, directory, manifest)


def recover_interrupted_swaps(directory: Path) -> list[str]:
    """Finish or undo swaps a crash interrupted in ``directory``; say which."""
    actions: list[str] = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return actions

    for entry in entries:
        if entry.name.startswith(STAGING_PREFIX) and entry.is_dir():
            actions.append(_recover_staging(entry, directory))
        elif TEMP_MARK in entry.name and entry.is_file():
            entry.unlink(missing_ok=True)
            actions.append(f"removed unfinished temporary file {entry.name}")

    for action in actions:
        logger.warning("Recovery in %s: %s", directory, action)

    return actions


def _recover_staging(staging: Path, directory: Path) -> str:
    manifest_path = staging / MANIFEST
    if not manifest_path.exists():
        shutil.rmtree(staging, ignore_errors=True)
        return f"discarded uncommitted swap {staging.name}"

    manifest = json.loads(manifest_path.read_text("utf-8"))
    _roll_forward(staging, directory, manifest)
    return f"completed committed swap {staging.name}"


def _roll_forward(
    staging: Path, directory: Path, manifest: Mapping[str, list[str]]
) -> None:
    for name in manifest["replace"]:
        staged = staging / name
        if staged.exists():
            os.replace(staged, directory / name)

    for name in manifest["delete"]:
        (directory / name).unlink(missing_ok=True)

    _sync_directory(directory)
    (staging / MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    _sync_directory(directory)


def _write_durably(path: Path, content: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())


def _sync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return

    try:
        os.fsync(fd)
    except OSError:
        logger.debug("Directory %s cannot be synced", directory)
    finally:
        os.close(fd)
