"""Deciding whether a project file is an attachment (photos, documents).

The reference matches attachment folders with a plain ``startswith``, so
``DCIMx.txt`` counts as an attachment of ``DCIM`` (section 7, bug 15). Here
the match is by whole path components: a file is an attachment when it lies
inside one of the folders, at any depth.
"""

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
