"""Rules for the names of files inside a project.

A name must be stored safely on every common operating system and must never
reach outside the project folder, because clients write downloads to
``<local dir>/<name>``.
"""

import unicodedata

from qfjobs.errors import InvalidFilenameError

MAX_PATH_LENGTH = 1024
MAX_SEGMENT_LENGTH = 255
#: Characters Windows refuses in names; QField sanitises them too.
FORBIDDEN_CHARACTERS = frozenset('<>:"|?*')
#: Bidirectional overrides let a name display as something it is not.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
QGIS_PROJECT_SUFFIXES = (".qgs", ".qgz")


def normalize_project_path(raw: str) -> str:
    """Check a project file name and return its canonical ``/``-separated form.

    Backslashes (Windows clients) become ``/`` and Unicode is NFC-normalised so
    that the same name typed on two systems is one file. Anything that could
    escape the project, or that some system cannot store, is refused.
    """
    name = unicodedata.normalize("NFC", raw.replace("\\", "/"))
    if not name:
        raise InvalidFilenameError("The file name is empty")
    if len(name.encode("utf-8")) > MAX_PATH_LENGTH:
        raise InvalidFilenameError(
            f"The file name is longer than {MAX_PATH_LENGTH} bytes"
        )
    if name.startswith("/"):
        raise InvalidFilenameError("Absolute file names are not allowed")

    for segment in name.split("/"):
        _check_segment(segment)
    return name


def _check_segment(segment: str) -> None:
    if segment in ("", ".", ".."):
        raise InvalidFilenameError(
            "File names may not contain empty, '.' or '..' path segments"
        )
    if len(segment.encode("utf-8")) > MAX_SEGMENT_LENGTH:
        raise InvalidFilenameError(
            f"A path segment is longer than {MAX_SEGMENT_LENGTH} bytes"
        )
    for char in segment:
        if char in FORBIDDEN_CHARACTERS:
            raise InvalidFilenameError(
                f"File names may not contain the character {char!r}"
            )
        if unicodedata.category(char) in ("Cc", "Cs") or char in BIDI_CONTROLS:
            raise InvalidFilenameError("File names may not contain control characters")
    if segment != segment.strip() or segment.endswith("."):
        raise InvalidFilenameError(
            "Path segments may not start or end with spaces or end with a dot"
        )


def is_qgis_project_file(path: str) -> bool:
    return path.lower().endswith(QGIS_PROJECT_SUFFIXES)
