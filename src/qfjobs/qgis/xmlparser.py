"""The one hardened XML parser for QGIS project files.

Every project file goes through :func:`parse_xml`. It streams the document into
lxml's pull parser in chunks, which lets it:

* stop reading once ``max_bytes`` have been fed, whatever a header or the file
  system claims;
* stop once elements nest deeper than ``max_depth``;
* refuse a DOCTYPE that declares entities (XXE, "billion laughs") before the
  body is parsed, while keeping the plain ``<!DOCTYPE qgis ...>`` that QGIS
  writes.

Entities are never resolved, no DTD is loaded, the network is never used and
libxml2's "huge tree" mode stays off. A resolver that answers every external
lookup with an empty document is installed as a second line of defence.

Parse errors become :class:`qfjobs.errors.InvalidProjectFileError` with the
line, the column and a short snippet of the offending line.
"""

import io
import logging
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import IO, Any

from lxml import etree

from qfjobs.errors import InvalidProjectFileError

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_DEPTH = 256
CHUNK_SIZE = 64 * 1024
SNIPPET_WIDTH = 100

XmlSource = Path | bytes | IO[bytes]

_LOCATION_SUFFIX = re.compile(r",? line \d+, column \d+$")


class _EmptyExternal(etree.Resolver):
    """Resolver that answers every external lookup with an empty document.

    libxml2 still asks for the external DTD named by ``<!DOCTYPE qgis
    PUBLIC '...' 'SYSTEM'>`` even though DTD loading is off; answering with
    nothing keeps it local. Entity declarations are refused separately.
    """

    def resolve(self, system_url: str, public_id: str, context: Any = None) -> Any:
        logger.debug("Not resolving external resource %r", system_url)
        return self.resolve_string("", context, base_url=None)


def parse_xml(
    source: XmlSource,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    name: str | None = None,
) -> etree._ElementTree:
    """Parse ``source`` safely and return its element tree.

    ``source`` is a path, the raw bytes, or a binary stream (read from its
    current position). ``name`` is used in error messages; it defaults to the
    file name of a path. Raises :class:`InvalidProjectFileError` for an empty,
    oversized, too deep, entity-declaring or malformed document.

    Note that libxml2 itself refuses nesting deeper than 256 levels without
    huge-tree mode, so a ``max_depth`` above 256 has no effect.
    """
    label = name or (source.name if isinstance(source, Path) else "project file")

    with _open_stream(source) as stream:
        root = _feed_stream(stream, label, max_bytes, max_depth, source)

    return root.getroottree()


def _open_stream(source: XmlSource) -> AbstractContextManager[IO[bytes]]:
    if isinstance(source, Path):
        return source.open("rb")

    if isinstance(source, bytes):
        return io.BytesIO(source)

    # A caller's stream stays open: the caller owns it.
    return nullcontext(source)


def _feed_stream(
    stream: IO[bytes],
    label: str,
    max_bytes: int,
    max_depth: int,
    source: XmlSource,
) -> etree._Element:
    parser = _new_parser()
    state = _DepthState(max_depth)
    total = 0

    try:
        for chunk in _chunks(stream):
            total += len(chunk)
            if total > max_bytes:
                raise InvalidProjectFileError(
                    f"{label} is larger than the limit of {max_bytes} bytes"
                )

            if total == len(chunk):
                _refuse_entity_declarations(chunk, label)

            parser.feed(chunk)
            state.consume(parser.read_events(), label)

        if total == 0:
            raise InvalidProjectFileError(f"{label} is empty (0 bytes)")

        root: etree._Element = parser.close()
        state.consume(parser.read_events(), label)
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc, label, source) from exc

    return root


def _new_parser() -> etree.XMLPullParser:
    parser = etree.XMLPullParser(
        events=("start", "end"),
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=False,
        collect_ids=False,
    )
    parser.resolvers.add(_EmptyExternal())
    return parser


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while True:
        chunk = stream.read(CHUNK_SIZE)
        if not chunk:
            return
        yield chunk


def _refuse_entity_declarations(head: bytes, label: str) -> None:
    """Cheap byte check on the first chunk, before libxml2 sees any of it."""
    if b"<!DOCTYPE" in head and b"<!ENTITY" in head:
        raise InvalidProjectFileError(
            f"{label} declares XML entities in its DOCTYPE; entities are not allowed"
        )


class _DepthState:
    """Tracks element depth and checks the DTD once the root element starts."""

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        self.depth = 0
        self.dtd_checked = False

    def consume(self, events: Iterator[tuple[str, Any]], label: str) -> None:
        for event, element in events:
            if event == "end":
                self.depth -= 1
                continue

            self.depth += 1
            if self.depth > self.max_depth:
                raise InvalidProjectFileError(
                    f"{label} nests elements deeper than {self.max_depth} levels"
                )

            if not self.dtd_checked:
                self.dtd_checked = True
                _check_internal_dtd(element, label)


def _check_internal_dtd(root: etree._Element, label: str) -> None:
    # A DOCTYPE larger than the first chunk escapes the byte check; the parsed
    # internal subset is complete once the root element has started.
    dtd = root.getroottree().docinfo.internalDTD
    # lxml-stubs lack DTD.entities().
    if dtd is not None and any(True for _ in dtd.entities()):  # type: ignore[attr-defined]
        raise InvalidProjectFileError(
            f"{label} declares XML entities in its DOCTYPE; entities are not allowed"
        )


def _syntax_error(
    exc: etree.XMLSyntaxError, label: str, source: XmlSource
) -> InvalidProjectFileError:
    line, column = exc.position if exc.position else (exc.lineno or 0, 0)
    reason = _LOCATION_SUFFIX.sub("", exc.msg or str(exc))
    if line <= 0:
        message = f"{label} is an invalid XML document: {reason}"
        return InvalidProjectFileError(message, line=None, column=None)

    snippet = _line_snippet(source, line, column)
    message = (
        f"{label} is an invalid XML document: {reason} "
        f"(line {line}, column {column})\n"
        f"line {line}: {snippet}"
    )
    logger.info("Invalid XML in %s at line %s column %s", label, line, column)
    return InvalidProjectFileError(message, line=line, column=column)


def _line_snippet(source: XmlSource, line: int, column: int) -> str:
    text = _read_line(source, line)
    if text is None:
        return "<line not available>"

    stripped = text.strip()
    indent = len(text) - len(text.lstrip())
    col = max(column - 1 - indent, 0)
    if len(stripped) <= SNIPPET_WIDTH:
        return stripped

    start = max(min(col - SNIPPET_WIDTH // 2, len(stripped) - SNIPPET_WIDTH), 0)
    piece = stripped[start : start + SNIPPET_WIDTH]
    prefix = "..." if start > 0 else ""
    suffix = "..." if start + SNIPPET_WIDTH < len(stripped) else ""
    return f"{prefix}{piece}{suffix}"


def _read_line(source: XmlSource, line: int) -> str | None:
    """Return line ``line`` (1-based) of the source, read again from the start."""
    if isinstance(source, Path):
        with source.open("rb") as handle:
            return _nth_line(handle, line)

    if isinstance(source, bytes):
        return _nth_line(io.BytesIO(source), line)

    if source.seekable():
        source.seek(0)
        return _nth_line(source, line)

    return None


def _nth_line(handle: IO[bytes], line: int) -> str | None:
    for number, raw in enumerate(handle, start=1):
        if number == line:
            return raw[:4096].decode("utf-8", errors="replace").rstrip("\r\n")
    return None
