"""Deciding whether a project file is an attachment (photos, documents).

The reference matches attachment folders with a plain ``startswith``, so
``DCIMx.txt`` counts as an attachment of ``DCIM`` (section 7, bug 15). Here
the match is by whole path components: a file is an attachment when it lies
inside one of the folders, at any depth.

Attachment folders are written in the project relative to the project
file's folder, as QGIS and QField resolve them: for ``sub/project.qgs``,
``DCIM`` is the storage folder ``sub/DCIM``
(:func:`storage_attachment_dirs`). File names in storage are relative to the
storage root, so they are matched against the storage folders.
"""

import posixpath
from collections.abc import Iterable
from pathlib import PurePosixPath

DEFAULT_ATTACHMENT_DIRS = ("DCIM",)


def _components(path: str) -> tuple[str, ...]:
    parts = PurePosixPath(path.replace("\\", "/")).parts
    return tuple(part for part in parts if part not in ("/", ".", ""))


def is_attachment(path: str, attachment_dirs: Iterable[str]) -> bool:
    """True when ``path`` (relative to the project root) is inside an attachment dir.

    ``is_attachment("DCIM/a.jpg", ["DCIM"])`` and
    ``is_attachment("DCIM/sub/a.jpg", ["DCIM"])`` are true;
    ``is_attachment("DCIMx.txt", ["DCIM"])`` and ``is_attachment("DCIM", ["DCIM"])``
    are false. Matching is case-sensitive, like the file storage.
    """
    file_parts = _components(path)
    for folder in attachment_dirs:
        folder_parts = _components(folder)
        if folder_parts and len(file_parts) > len(folder_parts):
            if file_parts[: len(folder_parts)] == folder_parts:
                return True
    return False


def storage_attachment_dirs(
    project_filename: str | None, attachment_dirs: Iterable[str]
) -> list[str]:
    """The attachment folders as paths from the storage root.

    ``storage_attachment_dirs("sub/p.qgs", ["DCIM"])`` is ``["sub/DCIM"]``;
    for a project at the root the folders are unchanged. ``..`` is resolved
    against the project's folder; a folder that is absolute (``/x``, ``C:/x``)
    or would lie outside the storage root cannot hold project files and is
    left out, as is the project's folder itself (``.``).
    """
    folder = posixpath.dirname((project_filename or "").replace("\\", "/"))
    resolved: list[str] = []
    for raw in attachment_dirs:
        name = raw.replace("\\", "/").strip()
        if not name or name.startswith("/") or _has_drive(name):
            continue
        if posixpath.normpath(name) == ".":
            continue
        joined = posixpath.normpath(posixpath.join(folder, name))
        if joined in (".", "..") or joined.startswith("../"):
            continue
        if joined not in resolved:
            resolved.append(joined)
    return resolved


def _has_drive(name: str) -> bool:
    return len(name) >= 2 and name[1] == ":" and name[0].isalpha()
