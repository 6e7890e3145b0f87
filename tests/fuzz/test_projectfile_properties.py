"""Property-based tests of the QGIS project-file reader (hypothesis).

Whatever bytes arrive as a ``.qgs`` or ``.qgz``, the reader either returns a
project or raises :class:`InvalidProjectFileError` (one of qfjobs' own errors,
which the job turns into a clear message); nothing else escapes, and it
never reads outside what it was given. Projects it accepts are inspected
layer by layer with generated data sources, and no password put into a data
source shows up in the details.

Examples are bounded (``QFJOBS_FUZZ_EXAMPLES``, default 200 per property).
"""

import io
import json
import os
import warnings
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qfjobs.errors import InvalidProjectFileError, QfjobsError
from qfjobs.qgis.inspect import inspect_project
from qfjobs.qgis.projectfile import open_project, validate_project_upload
from qfjobs.qgis.xmlparser import parse_xml
from tests.helpers import MINIMAL_QGS

EXAMPLES = int(os.environ.get("QFJOBS_FUZZ_EXAMPLES", "200"))
BOUNDED = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
SMALL_LIMIT = 64 * 1024


def write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def mutated(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """Apply ``(position, deleted length, inserted bytes)`` edits in turn."""
    for position, length, inserted in edits:
        at = position % (len(data) + 1)
        data = data[:at] + inserted + data[at + length :]
    return data


EDITS = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=10_000),
        st.integers(min_value=0, max_value=40),
        st.binary(max_size=40)
        | st.sampled_from(
            [
                b"<",
                b">",
                b"&",
                b"&amp;",
                b"<!ENTITY x 'y'>",
                b"<!DOCTYPE qgis [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>",
                b"\x00",
                b"\xff\xfe",
                b"]]>",
                b"<![CDATA[",
                b"</qgis>",
                b"<maplayer>",
            ]
        ),
    ),
    min_size=1,
    max_size=6,
)


@BOUNDED
@given(data=st.binary(max_size=4096))
def test_arbitrary_bytes_parse_or_fail_cleanly(data: bytes) -> None:
    try:
        parse_xml(data, max_bytes=SMALL_LIMIT, name="fuzz.qgs")
    except InvalidProjectFileError as exc:
        assert exc.message
        assert "fuzz.qgs" in exc.message


@BOUNDED
@given(edits=EDITS)
def test_mutated_project_opens_or_fails_cleanly(
    tmp_path_factory, edits: list[tuple[int, int, bytes]]
) -> None:
    tmp = tmp_path_factory.mktemp("qgs")
    data = mutated(MINIMAL_QGS, edits)
    path = write(tmp, "project.qgs", data)
    try:
        project = open_project(path, max_bytes=SMALL_LIMIT)
    except InvalidProjectFileError as exc:
        assert exc.message
        assert "passwd" not in exc.message or b"passwd" in data
        return
    assert project.root.tag == "qgis"
    # Whatever entity trick got in, no outside file was read into the tree.
    text = b"".join(
        part.encode() for part in project.root.itertext() if isinstance(part, str)
    )
    assert b"root:" not in text


MEMBER_NAMES = st.sampled_from(
    [
        "project.qgs",
        "other.qgs",
        "../project.qgs",
        "/abs/project.qgs",
        "sub/project.qgs",
        "project_attachments.zip",
        "PROJECT.QGS",
        "a\\..\\b.qgs",
        "x.qgd",
    ]
) | st.text(min_size=1, max_size=20)


@BOUNDED
@given(
    members=st.lists(
        st.tuples(MEMBER_NAMES, st.sampled_from([MINIMAL_QGS, b"", b"<qgis/>"])),
        max_size=4,
    ),
    compression=st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]),
)
def test_generated_qgz_is_checked_or_refused_cleanly(
    tmp_path_factory, members: list[tuple[str, bytes]], compression: int
) -> None:
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", compression) as archive,
        warnings.catch_warnings(),
    ):
        # Duplicate member names are part of what is generated.
        warnings.simplefilter("ignore", UserWarning)
        for name, content in members:
            try:
                archive.writestr(name, content)
            except (ValueError, UnicodeEncodeError):
                continue
    data = buffer.getvalue()
    tmp = tmp_path_factory.mktemp("qgz")
    path = write(tmp, "project.qgz", data)

    try:
        member = validate_project_upload("project.qgz", data)
    except InvalidProjectFileError as exc:
        assert exc.message
        member = None
    try:
        project = open_project(path, max_bytes=SMALL_LIMIT)
    except InvalidProjectFileError:
        return
    # Accepted: exactly the member the upload check named, a safe name.
    assert project.qgs_member == member
    assert member is not None
    assert not member.startswith("/") and ".." not in member.split("/")
    assert list(tmp.iterdir()) == [path]  # nothing was extracted


@BOUNDED
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes_as_qgz_are_refused_cleanly(
    tmp_path_factory, data: bytes
) -> None:
    path = write(tmp_path_factory.mktemp("qgz"), "project.qgz", data)
    try:
        open_project(path, max_bytes=SMALL_LIMIT)
    except InvalidProjectFileError as exc:
        assert exc.message


PASSWORD = "Zx9-secret-pw"
PROVIDERS = st.sampled_from(
    ["ogr", "gdal", "postgres", "spatialite", "delimitedtext", "wms", "memory", "xyz"]
)
PATHS = st.sampled_from(
    [
        "./data/a.gpkg|layername=a",
        "../outside/b.gpkg|layername=b",
        "/etc/passwd",
        "C:/gis/ortho.tif",
        "data/missing.shp",
        "file:///etc/hostname?type=csv&delimiter=,",
        "",
    ]
)
SOURCES = st.one_of(
    PATHS,
    st.builds(
        lambda port, extra: (
            f"dbname='x' host=127.0.0.1 port={port} user='u' password='{PASSWORD}' "
            f'{extra} key=\'id\' table="public"."t" (geom)'
        ),
        st.integers(min_value=1, max_value=65535),
        st.sampled_from(["", "sslmode=disable", "authcfg=abc1234", "service='nope'"]),
    ),
    st.builds(
        lambda host: (
            f"crs=EPSG:3857&format=image/png&layers=a&password={PASSWORD}"
            f"&url=http://u:{PASSWORD}@{host}/wms"
        ),
        st.sampled_from(["127.0.0.1:1", "localhost:9"]),
    ),
    st.text(max_size=60),
)


def layer_xml(index: int, provider: str, source: str) -> str:
    return (
        f'<maplayer type="vector" wkbType="Point"><id>layer_{index}</id>'
        f"<datasource>{escape(source)}</datasource>"
        f"<layername>layer {index}</layername>"
        f"<provider encoding={quoteattr('UTF-8')}>{escape(provider)}</provider>"
        "</maplayer>"
    )


@settings(BOUNDED, max_examples=max(EXAMPLES // 2, 5))
@given(layers=st.lists(st.tuples(PROVIDERS, SOURCES), max_size=4))
def test_inspection_of_generated_layers_never_crashes_or_leaks(
    tmp_path_factory, layers: list[tuple[str, str]]
) -> None:
    tmp = tmp_path_factory.mktemp("inspect")
    body = "".join(
        layer_xml(index, provider, source)
        for index, (provider, source) in enumerate(layers)
    )
    qgs = (
        '<qgis projectname="" version="3.34.0-Prizren">'
        "<projectCrs><spatialrefsys><authid>EPSG:4326</authid></spatialrefsys>"
        f"</projectCrs><projectlayers>{body}</projectlayers></qgis>"
    )
    path = write(tmp / "project", "project.qgs", qgs.encode("utf-8", "replace"))
    try:
        report = inspect_project(path, pg_timeout=1)
    except QfjobsError as exc:
        assert PASSWORD not in exc.message
        return
    assert len(report.layers) == len({f"layer_{i}" for i in range(len(layers))})
    dumped = json.dumps(report.details, default=str)
    assert PASSWORD not in dumped
    for layer in report.layers:
        assert PASSWORD not in json.dumps(layer.record, default=str)
