"""The hardened XML parser: limits, entity refusal and error messages."""

import io
from pathlib import Path

import pytest

from qfjobs.errors import InvalidProjectFileError
from qfjobs.qgis.xmlparser import CHUNK_SIZE, parse_xml
from tests.qgis.conftest import data_folder

QGIS_DOCTYPE = b"<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE qgis [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<qgis version="3.34.0"><title>&lol9;</title></qgis>
"""


def xxe_document(target: Path) -> bytes:
    return (
        b'<?xml version="1.0"?>\n<!DOCTYPE qgis [\n'
        b'  <!ENTITY xxe SYSTEM "file://' + str(target).encode() + b'">\n]>\n'
        b'<qgis version="3.34.0"><title>&xxe;</title></qgis>\n'
    )


def test_broken_corpus_file_names_line_20() -> None:
    with pytest.raises(InvalidProjectFileError) as caught:
        parse_xml(data_folder("qfieldcloud-broken_xml") / "broken.qgs")

    message = caught.value.message
    assert "line 20, column 27" in message
    assert "broken.qgs is an invalid XML document" in message
    assert "line 20: <!-- <layer-tree-group> -- XML is broken here" in message
    assert caught.value.details == {"line": 20, "column": 27}
    assert caught.value.error_type == "INVALID_PROJECT_FILE"


def test_truncated_document_is_a_clear_error() -> None:
    source = b'<qgis version="3.34.0"><projectlayers><maplayer>'

    with pytest.raises(InvalidProjectFileError) as caught:
        parse_xml(source, name="project.qgs")

    message = caught.value.message
    assert "Premature end of data in tag maplayer" in message
    assert "line 1, column 49" in message
    assert '<qgis version="3.34.0"><projectlayers><maplayer>' in message


def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "project.qgs"
    empty.write_bytes(b"")

    with pytest.raises(
        InvalidProjectFileError, match=r"project.qgs is empty \(0 bytes\)"
    ):
        parse_xml(empty)


def test_not_xml_at_all() -> None:
    with pytest.raises(InvalidProjectFileError, match="invalid XML document"):
        parse_xml(b"just some text, not a project\n", name="file.qgs")


def test_long_line_snippet_is_cut_around_the_column() -> None:
    source = b"<qgis>" + b"<a/>" * 500 + b"<b></c>" + b"<a/>" * 500 + b"</qgis>"

    with pytest.raises(InvalidProjectFileError) as caught:
        parse_xml(source, name="long.qgs")

    snippet_line = caught.value.message.splitlines()[-1]
    assert "<b></c>" in snippet_line
    assert snippet_line.startswith("line 1: ...")
    assert len(snippet_line) < 130


def test_qgis_doctype_without_entities_is_accepted() -> None:
    tree = parse_xml(QGIS_DOCTYPE + b'<qgis version="2.16.3"><title>x</title></qgis>')

    assert tree.getroot().findtext("title") == "x"


def test_billion_laughs_is_refused() -> None:
    with pytest.raises(InvalidProjectFileError, match="declares XML entities"):
        parse_xml(BILLION_LAUGHS, name="laughs.qgs")


def test_external_entity_is_refused_and_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")

    with pytest.raises(InvalidProjectFileError) as caught:
        parse_xml(xxe_document(secret), name="xxe.qgs")

    assert "entities are not allowed" in caught.value.message
    assert "TOP-SECRET" not in caught.value.message


def test_entities_after_a_large_prolog_are_refused() -> None:
    # The DOCTYPE does not fit in the first chunk, so only the parsed-DTD check
    # can see the entity declaration.
    padding = b"<!-- " + b"x" * (CHUNK_SIZE + 10) + b" -->\n"
    source = (
        b'<?xml version="1.0"?>\n'
        + padding
        + b'<!DOCTYPE qgis [<!ENTITY e "boom">]>\n<qgis>&e;</qgis>'
    )

    with pytest.raises(InvalidProjectFileError, match="declares XML entities"):
        parse_xml(source, name="late.qgs")


def test_depth_limit_is_enforced() -> None:
    nested = b"<a>" * 40 + b"</a>" * 40

    tree = parse_xml(b"<qgis>" + nested + b"</qgis>", max_depth=41)
    assert tree.getroot().tag == "qgis"

    with pytest.raises(InvalidProjectFileError, match="deeper than 30 levels"):
        parse_xml(b"<qgis>" + nested + b"</qgis>", max_depth=30)


def test_default_depth_limit_refuses_deep_documents() -> None:
    deep = b"<qgis>" + b"<a>" * 300 + b"</a>" * 300 + b"</qgis>"

    with pytest.raises(InvalidProjectFileError):
        parse_xml(deep, name="deep.qgs")


def test_size_limit_counts_the_bytes_really_read() -> None:
    body = b"<qgis>" + b"<title>0123456789</title>" * 1000 + b"</qgis>"

    assert parse_xml(body, max_bytes=len(body)).getroot().tag == "qgis"
    with pytest.raises(InvalidProjectFileError, match="larger than the limit"):
        parse_xml(io.BytesIO(body), max_bytes=len(body) - 1, name="big.qgs")


def test_streams_are_read_from_their_position_and_left_open() -> None:
    stream = io.BytesIO(b"JUNK<qgis version='3.40.0'/>")
    stream.seek(4)

    tree = parse_xml(stream)

    assert tree.getroot().get("version") == "3.40.0"
    assert not stream.closed


def test_invalid_utf8_names_the_line() -> None:
    source = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b"<qgis>\n<title>caf\xe9</title>\n</qgis>"
    )

    with pytest.raises(InvalidProjectFileError) as caught:
        parse_xml(source, name="latin1.qgs")

    assert "line 3" in caught.value.message
