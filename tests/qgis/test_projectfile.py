"""Opening .qgs/.qgz files and validating uploads, including hostile archives."""

import io
import os
import struct
import zipfile
from pathlib import Path

import pytest

from qfjobs.errors import InvalidProjectFileError, ProjectFileNotFoundError
from qfjobs.qgis.projectfile import (
    open_project,
    parse_qgis_version,
    validate_project_upload,
)
from qfjobs.qgis.qgzarchive import ZipLimits
from tests.qgis.conftest import data_folder

DELTA = data_folder("qfieldcloud-delta")


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def test_open_qgs(tmp_path: Path) -> None:
    project = open_project(DELTA / "project.qgs")

    assert project.filename == "project.qgs"
    assert project.project_dir == DELTA.absolute()
    assert project.qgis_version == "3.30.0-'s-Hertogenbosch"
    assert project.version_tuple == (3, 30, 0)
    assert project.root.tag == "qgis"
    assert not project.is_zipped


def test_suffix_is_case_insensitive(tmp_path: Path) -> None:
    upper = tmp_path / "PROJECT.QGS"
    upper.write_bytes((DELTA / "project.qgs").read_bytes())

    assert open_project(upper).filename == "PROJECT.QGS"


def test_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    other = tmp_path / "project.gpkg"
    other.write_bytes(b"x")

    with pytest.raises(InvalidProjectFileError, match='unknown file extension ".gpkg"'):
        open_project(other)
    with pytest.raises(ProjectFileNotFoundError, match="does not exist"):
        open_project(tmp_path / "absent.qgs")


def test_open_qgz_built_here(tmp_path: Path) -> None:
    qgs = (DELTA / "project.qgs").read_bytes()
    archive = make_zip(
        tmp_path / "Project.QGZ",
        {"project.qgs": qgs, "project.qgd": b"aux", "abc_styles.db": b"\0" * 100},
    )

    project = open_project(archive)

    assert project.is_zipped
    assert project.qgs_member == "project.qgs"
    assert project.qgis_version.startswith("3.30.0")
    assert project.project_dir == tmp_path.absolute()


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"readme.txt": b"hi"}, "holds no .qgs project file"),
        ({"a.qgs": b"<qgis/>", "b.qgs": b"<qgis/>"}, "holds 2 .qgs project files"),
        ({"../evil.qgs": b"<qgis/>"}, "unsafe name"),
        ({"/abs/evil.qgs": b"<qgis/>"}, "unsafe name"),
        ({"ok.qgs": b"<qgis/>", "sub/../../x.db": b"x"}, "unsafe name"),
        ({"C:/evil.qgs": b"<qgis/>"}, "unsafe name"),
    ],
)
def test_bad_archives_are_refused(
    tmp_path: Path, members: dict[str, bytes], message: str
) -> None:
    archive = make_zip(tmp_path / "p.qgz", members)

    with pytest.raises(InvalidProjectFileError, match=message):
        open_project(archive)
    with pytest.raises(InvalidProjectFileError, match=message):
        validate_project_upload("p.qgz", archive.read_bytes())


def test_not_a_zip(tmp_path: Path) -> None:
    fake = tmp_path / "p.qgz"
    fake.write_bytes(b"<qgis/>")

    with pytest.raises(InvalidProjectFileError, match="not a valid .qgz"):
        open_project(fake)


def test_zip_bomb_refused_from_its_header(tmp_path: Path) -> None:
    bomb = make_zip(
        tmp_path / "bomb.qgz",
        {"project.qgs": b"<qgis>" + b" " * (64 * 1024 * 1024) + b"</qgis>"},
    )
    assert bomb.stat().st_size < 1024 * 1024

    with pytest.raises(InvalidProjectFileError, match="zip bomb"):
        open_project(bomb)
    with pytest.raises(InvalidProjectFileError, match="zip bomb"):
        validate_project_upload("bomb.qgz", bomb.read_bytes())


def test_total_size_limit(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "big.qgz", {"p.qgs": b"<qgis/>", "data.bin": b"\x01" * 4096}
    )
    limits = ZipLimits(max_total_bytes=2048)

    with pytest.raises(InvalidProjectFileError, match="unpacks to"):
        validate_project_upload("big.qgz", archive.read_bytes(), zip_limits=limits)


def lie_about_size(data: bytes, member: str, claimed: int) -> bytes:
    """Rewrite the uncompressed size of ``member`` in both zip headers."""
    patched = bytearray(data)
    name = member.encode()
    local = patched.find(b"PK\x03\x04")
    while local >= 0:
        name_length = struct.unpack("<H", patched[local + 26 : local + 28])[0]
        if patched[local + 30 : local + 30 + name_length] == name:
            patched[local + 22 : local + 26] = struct.pack("<I", claimed)
        local = patched.find(b"PK\x03\x04", local + 4)
    central = patched.find(b"PK\x01\x02")
    while central >= 0:
        name_length = struct.unpack("<H", patched[central + 28 : central + 30])[0]
        if patched[central + 46 : central + 46 + name_length] == name:
            patched[central + 24 : central + 28] = struct.pack("<I", claimed)
        central = patched.find(b"PK\x01\x02", central + 4)
    return bytes(patched)


def test_lying_header_does_not_get_past_the_bounded_read(tmp_path: Path) -> None:
    content = b"<qgis>" + b"<title>t</title>" * 200_000 + b"</qgis>"
    honest = make_zip(tmp_path / "honest.qgz", {"project.qgs": content}).read_bytes()
    liar = tmp_path / "liar.qgz"
    liar.write_bytes(lie_about_size(honest, "project.qgs", 1000))

    # The header now claims 1000 bytes, below every ratio check; the real
    # stream must still not be accepted.
    with pytest.raises(InvalidProjectFileError):
        open_project(liar)


def test_real_size_limit_applies_while_reading(tmp_path: Path) -> None:
    content = b"<qgis>" + os.urandom(100_000).hex().encode() + b"</qgis>"
    archive = make_zip(tmp_path / "p.qgz", {"project.qgs": content})

    with pytest.raises(InvalidProjectFileError, match="unpacks to more than"):
        open_project(archive, zip_limits=ZipLimits(max_qgs_bytes=100_000))


def test_encrypted_flag_is_refused(tmp_path: Path) -> None:
    data = bytearray(make_zip(tmp_path / "p.qgz", {"p.qgs": b"<qgis/>"}).read_bytes())
    central = data.find(b"PK\x01\x02")
    flags = struct.unpack("<H", data[central + 8 : central + 10])[0]
    data[central + 8 : central + 10] = struct.pack("<H", flags | 1)

    with pytest.raises(InvalidProjectFileError, match="encrypted"):
        validate_project_upload("p.qgz", bytes(data))


def test_upload_validation_of_a_good_qgz_stream(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "p.qgz", {"folder/p.qgs": b"<qgis/>"})
    stream = io.BytesIO(archive.read_bytes())

    assert validate_project_upload("p.QGZ", stream) == "folder/p.qgs"
    assert stream.tell() == 0


def test_upload_validation_of_qgs_checks_size_only() -> None:
    # Bad XML in a .qgs is reported by the job (reference behaviour, case B3).
    assert validate_project_upload("p.qgs", b"not xml") is None
    assert validate_project_upload("p.qgs", b"") is None
    with pytest.raises(InvalidProjectFileError, match="larger than the limit"):
        validate_project_upload("p.qgs", b"x" * 11, max_bytes=10)
    with pytest.raises(InvalidProjectFileError, match="unknown file extension"):
        validate_project_upload("p.txt", b"<qgis/>")


def test_root_must_be_qgis(tmp_path: Path) -> None:
    other = tmp_path / "p.qgs"
    other.write_bytes(b"<html><body/></html>")

    with pytest.raises(InvalidProjectFileError, match="root element is <html>"):
        open_project(other)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3.30.0-'s-Hertogenbosch", (3, 30, 0)),
        ("2.16.3", (2, 16, 3)),
        ("3.44", (3, 44, 0)),
        ("", (0, 0, 0)),
        ("Master", (0, 0, 0)),
    ],
)
def test_parse_qgis_version(text: str, expected: tuple[int, int, int]) -> None:
    assert parse_qgis_version(text) == expected
