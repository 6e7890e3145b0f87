"""Safe reading of ``.qgz`` archives (a zip holding one ``.qgs``).

QGIS writes a ``.qgz`` as a zip with exactly one ``.qgs`` plus optional side
files (``.qgd`` auxiliary storage, ``*_styles.db``, ``*.mldata``). An uploaded
archive is untrusted, so this module refuses:

* archives that are not zips, are encrypted, or hold too many members;
* zero or several ``.qgs`` members;
* member names that are absolute, contain ``..`` or NUL, or use backslashes
  (a zip-slip path would escape any directory it is extracted into);
* zip bombs: the declared total size is limited, the declared compression
  ratio of large members is limited, and the ``.qgs`` member itself is read
  in chunks with the limits applied to the bytes actually decompressed, so a
  lying header does not help.
"""

import logging
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO

from qfjobs.errors import InvalidProjectFileError

logger = logging.getLogger(__name__)

DEFAULT_MAX_MEMBERS = 1000
DEFAULT_MAX_TOTAL_BYTES = 1024 * 1024 * 1024
DEFAULT_MAX_RATIO = 500
#: Members smaller than this are not ratio-checked: tiny files compress wildly.
RATIO_CHECK_FLOOR = 1024 * 1024
READ_CHUNK = 1024 * 1024

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ZipLimits:
    """Limits applied to an untrusted ``.qgz``."""

    max_members: int = DEFAULT_MAX_MEMBERS
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    max_ratio: int = DEFAULT_MAX_RATIO
    max_qgs_bytes: int = 256 * 1024 * 1024


def find_qgs_member(
    source: str | IO[bytes], label: str, limits: ZipLimits = ZipLimits()
) -> str:
    """Check the archive's directory and return the name of its one ``.qgs``.

    Only the central directory is read: this is the cheap check used on
    upload. ``source`` is a path or a seekable binary stream.
    """
    with _open_zip(source, label) as archive:
        return _checked_qgs_name(archive, label, limits)


def read_qgs_member(
    source: str | IO[bytes], label: str, limits: ZipLimits = ZipLimits()
) -> tuple[str, bytes]:
    """Return the name and the content of the archive's one ``.qgs``.

    The member is decompressed in chunks; reading stops with an error as soon
    as the real output passes ``limits.max_qgs_bytes`` or the real ratio
    passes ``limits.max_ratio``.
    """
    with _open_zip(source, label) as archive:
        member = _checked_qgs_name(archive, label, limits)
        info = archive.getinfo(member)
        with archive.open(info) as handle:
            data = _bounded_read(handle, info, label, limits)

    return member, data


def _open_zip(source: str | IO[bytes], label: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise InvalidProjectFileError(
            f"{label} is not a valid .qgz (zip) archive: {exc}"
        ) from exc


def _checked_qgs_name(archive: zipfile.ZipFile, label: str, limits: ZipLimits) -> str:
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise InvalidProjectFileError(
            f"{label} holds {len(infos)} files, more than the limit of "
            f"{limits.max_members}"
        )

    total = 0
    for info in infos:
        _check_member_name(info.filename, label)
        _check_member_sizes(info, label, limits)
        total += info.file_size

    if total > limits.max_total_bytes:
        raise InvalidProjectFileError(
            f"{label} unpacks to {total} bytes, more than the limit of "
            f"{limits.max_total_bytes}"
        )

    return _single_qgs(infos, label)


def _check_member_name(name: str, label: str) -> None:
    parts = PurePosixPath(name).parts
    unsafe = (
        name.startswith("/")
        or "\\" in name
        or "\x00" in name
        or _WINDOWS_DRIVE.match(name) is not None
        or ".." in parts
    )
    if unsafe:
        raise InvalidProjectFileError(
            f"{label} holds a file with an unsafe name: {name!r}"
        )


def _check_member_sizes(info: zipfile.ZipInfo, label: str, limits: ZipLimits) -> None:
    if info.flag_bits & 0x1:
        raise InvalidProjectFileError(
            f"{label} holds an encrypted file ({info.filename!r})"
        )

    if info.file_size < RATIO_CHECK_FLOOR:
        return

    ratio = info.file_size / max(info.compress_size, 1)
    if ratio > limits.max_ratio:
        raise InvalidProjectFileError(
            f"{label} looks like a zip bomb: {info.filename!r} has a "
            f"compression ratio of {ratio:.0f}:1 (limit {limits.max_ratio}:1)"
        )


def _single_qgs(infos: list[zipfile.ZipInfo], label: str) -> str:
    names = [
        info.filename
        for info in infos
        if not info.is_dir() and info.filename.lower().endswith(".qgs")
    ]
    if not names:
        raise InvalidProjectFileError(f"{label} holds no .qgs project file")

    if len(names) > 1:
        listed = ", ".join(sorted(names))
        raise InvalidProjectFileError(
            f"{label} holds {len(names)} .qgs project files ({listed}); "
            "exactly one is expected"
        )

    return names[0]


def _bounded_read(
    handle: IO[bytes], info: zipfile.ZipInfo, label: str, limits: ZipLimits
) -> bytes:
    parts: list[bytes] = []
    total = 0
    compressed = max(info.compress_size, 1)

    try:
        while chunk := handle.read(READ_CHUNK):
            total += len(chunk)
            if total > limits.max_qgs_bytes:
                raise InvalidProjectFileError(
                    f"{label}: {info.filename!r} unpacks to more than "
                    f"{limits.max_qgs_bytes} bytes"
                )
            if total > RATIO_CHECK_FLOOR and total / compressed > limits.max_ratio:
                raise InvalidProjectFileError(
                    f"{label} looks like a zip bomb: {info.filename!r} expands "
                    f"more than {limits.max_ratio}:1"
                )
            parts.append(chunk)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:
        raise InvalidProjectFileError(
            f"{label}: cannot unpack {info.filename!r}: {exc}"
        ) from exc

    logger.debug("Read %s bytes of %s from %s", total, info.filename, label)
    return b"".join(parts)
