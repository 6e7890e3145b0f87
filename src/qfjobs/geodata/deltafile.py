"""QField deltafiles (version 1.0): limits, validation and the typed model.

``parse_deltafile`` turns the uploaded bytes into a :class:`Deltafile`, or raises
:class:`~qfjobs.errors.InvalidDeltafileError` whose message names the delta index
and the field that is wrong. The checks run in this order, cheapest first, so a
hostile upload is refused before it costs much:

1. size (``DeltafileLimits.max_bytes``), before anything is decoded;
2. UTF-8 decoding (a byte-order mark is dropped);
3. nesting depth, measured on the raw text before ``json.loads`` builds anything;
4. JSON syntax;
5. number of deltas;
6. NUL characters (``\\u0000``) are removed from every string and key (field
   failure D2: they crash PostgreSQL text columns and the reference's upload);
   lone UTF-16 surrogates, which no UTF-8 store accepts, become U+FFFD;
7. the JSON Schema in ``qfjobs/schemas/deltafile-1.0.json``;
8. duplicate delta uuids inside the file.

``parse_delta`` builds one :class:`Delta` from a delta object the caller stored
earlier (``Delta.content``), with the same schema and the same fallback: an empty
``sourceLayerId`` takes the ``localLayerId`` (field failure D3).
"""

import itertools
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import jsonschema_rs
import numpy as np

from qfjobs.errors import InvalidDeltafileError

logger = logging.getLogger(__name__)

SCHEMA_RESOURCE = "schemas/deltafile-1.0.json"

_STRING_LITERAL = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class DeltaMethod(StrEnum):
    CREATE = "create"
    PATCH = "patch"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class DeltafileLimits:
    """Upper bounds checked before and while a deltafile is parsed."""

    max_bytes: int = 64 * 1024 * 1024
    #: JSON nesting; the deltafile itself uses 5 levels down to an attribute.
    max_depth: int = 32
    max_deltas: int = 100_000


DEFAULT_LIMITS = DeltafileLimits()


@dataclass(frozen=True, slots=True)
class FeatureState:
    """The ``old`` or ``new`` side of a delta.

    ``has_geometry`` tells an absent ``geometry`` key (geometry untouched) apart
    from ``"geometry": null`` (geometry removed).
    """

    attributes: Mapping[str, Any] = field(default_factory=dict)
    geometry: str | None = None
    has_geometry: bool = False
    files_sha256: Mapping[str, str | None] = field(default_factory=dict)
    is_snapshot: bool | None = None


@dataclass(frozen=True, slots=True)
class Delta:
    """One validated delta. ``source_layer_id`` already holds the fallback."""

    index: int
    uuid: str
    client_id: str
    local_pk: str
    source_pk: str
    local_layer_id: str
    source_layer_id: str
    method: DeltaMethod
    old: FeatureState | None
    new: FeatureState | None
    export_id: str | None = None
    local_layer_crs: str | None = None
    local_layer_name: str | None = None
    #: The delta object as received, NUL characters removed: what to store.
    content: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Deltafile:
    version: str
    project: str
    id: str
    deltas: tuple[Delta, ...]
    files: tuple[str, ...]
    #: ``clientPks`` of the reference worker file; informational only.
    client_pks: Mapping[str, str | None] = field(default_factory=dict)


def parse_deltafile(data: bytes, limits: DeltafileLimits = DEFAULT_LIMITS) -> Deltafile:
    """Validate ``data`` and return the typed deltafile, or raise the reason."""
    _check_size(data, limits)

    text = _decode(data)

    _check_depth(data, limits)

    document = _load_json(text)

    _check_delta_count(document, limits)

    document = sanitize_strings(document)

    _validate(_validator(), document, prefix="")

    deltas = tuple(
        _build_delta(raw, index) for index, raw in enumerate(document["deltas"])
    )
    _check_unique_uuids(deltas)

    client_pks = document.get("clientPks") or {}
    return Deltafile(
        version=document["version"],
        project=document["project"],
        id=document["id"],
        deltas=deltas,
        files=tuple(document["files"]),
        client_pks={
            str(k): None if v is None else str(v) for k, v in client_pks.items()
        },
    )


def parse_delta(raw: Any, index: int = 0) -> Delta:
    """Validate one stored delta object and return it typed."""
    sanitized = sanitize_strings(raw)
    _validate(_delta_validator(), sanitized, prefix=f"deltas[{index}]")
    return _build_delta(sanitized, index)


def parse_stored_delta(raw: Any, index: int = 0) -> Delta:
    """Build one delta this service validated and stored earlier, without the
    costly schema check; a stored object that does not fit raises
    :class:`~qfjobs.errors.InvalidDeltafileError` all the same."""
    sanitized = sanitize_strings(raw)
    try:
        if not isinstance(sanitized, dict):
            raise TypeError("not an object")
        return _build_delta(sanitized, index)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidDeltafileError(
            f"Invalid delta: deltas[{index}]: {type(exc).__name__}: {exc}",
            reason="schema",
            delta_index=index,
        ) from exc


def sanitize_strings(value: Any) -> Any:
    """Return ``value`` with NULs removed from all strings and keys (recursive)."""
    if isinstance(value, str):
        return _clean_text(value)

    if isinstance(value, dict):
        return {_clean_text(k): sanitize_strings(v) for k, v in value.items()}

    if isinstance(value, list):
        return [sanitize_strings(item) for item in value]

    return value


def _clean_text(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "")

    if _LONE_SURROGATE.search(text):
        text = _LONE_SURROGATE.sub("\ufffd", text)

    return text


def _check_size(data: bytes, limits: DeltafileLimits) -> None:
    if len(data) > limits.max_bytes:
        raise InvalidDeltafileError(
            f"Invalid deltafile: {len(data)} bytes is more than the limit of "
            f"{limits.max_bytes} bytes",
            reason="too_large",
        )

    if not data.strip():
        raise InvalidDeltafileError(
            "Invalid deltafile: the file is empty", reason="empty"
        )


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidDeltafileError(
            f"Invalid deltafile: not UTF-8 text (byte {exc.start})",
            reason="not_utf8",
        ) from exc


def _check_depth(data: bytes, limits: DeltafileLimits) -> None:
    depth = json_nesting_depth(data)
    if depth > limits.max_depth:
        raise InvalidDeltafileError(
            f"Invalid deltafile: JSON nested {depth} levels deep, the limit is "
            f"{limits.max_depth}",
            reason="too_deep",
        )


def json_nesting_depth(data: bytes) -> int:
    """Deepest ``[``/``{`` nesting of raw JSON text, brackets in strings ignored.

    Works on the bytes with regex and numpy, so it costs little even for a file
    made of nothing but brackets.
    """
    brackets = _STRING_LITERAL.sub(b"", data).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0

    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps, dtype=np.int64).max())


def _load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidDeltafileError(
            f"Invalid deltafile: not JSON ({exc.msg} at line {exc.lineno} "
            f"column {exc.colno})",
            reason="not_json",
        ) from exc
    except RecursionError as exc:
        raise InvalidDeltafileError(
            "Invalid deltafile: JSON nested too deeply", reason="too_deep"
        ) from exc


def _check_delta_count(document: Any, limits: DeltafileLimits) -> None:
    if not isinstance(document, dict):
        return

    deltas = document.get("deltas")
    if isinstance(deltas, list) and len(deltas) > limits.max_deltas:
        raise InvalidDeltafileError(
            f"Invalid deltafile: {len(deltas)} deltas is more than the limit of "
            f"{limits.max_deltas}",
            reason="too_many_deltas",
        )


@cache
def load_schema() -> dict[str, Any]:
    """The deltafile JSON Schema shipped in ``qfjobs/schemas``."""
    text = resources.files("qfjobs").joinpath(SCHEMA_RESOURCE).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


class SchemaCheck:
    """A JSON Schema, checked fast and explained well.

    jsonschema-rs answers whether a document fits (about 100,000 deltas a
    second); only a document that does not is walked again by the ``jsonschema``
    package, whose errors carry the path and the best match for the message.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        self.fast = jsonschema_rs.Draft7Validator(schema)
        self.explaining = jsonschema.Draft7Validator(schema)


def _delta_schema() -> dict[str, Any]:
    schema = load_schema()
    return {"definitions": schema["definitions"], **schema["definitions"]["delta"]}


@cache
def _validator() -> SchemaCheck:
    return SchemaCheck(load_schema())


@cache
def _delta_validator() -> SchemaCheck:
    return SchemaCheck(_delta_schema())


def _validate(check: SchemaCheck, document: Any, prefix: str) -> None:
    if check.fast.is_valid(document):
        return

    # A broken file can hold an error in every delta; the first few are enough to
    # choose the most telling one.
    errors = list(itertools.islice(check.explaining.iter_errors(document), 20))
    if not errors:
        return

    error = jsonschema.exceptions.best_match(errors)
    path = list(error.absolute_path)
    location = _format_path(path, prefix)
    missing = _missing_property(error) if error.validator == "required" else None
    if missing:
        path.append(missing)

    where = f"{location}: " if location else ""
    raise InvalidDeltafileError(
        f"Invalid deltafile: {where}{error.message}",
        reason="schema",
        delta_index=_delta_index(path, prefix),
        field=_field_name(path),
    )


def _missing_property(error: jsonschema.ValidationError) -> str | None:
    match = re.match(r"'([^']*)' is a required property", error.message)
    return match.group(1) if match else None


def _format_path(path: list[Any], prefix: str) -> str:
    text = prefix
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)

    return text


def _delta_index(path: list[Any], prefix: str) -> int | None:
    if prefix:
        match = re.match(r"deltas\[(\d+)\]", prefix)
        return int(match.group(1)) if match else None

    if len(path) >= 2 and path[0] == "deltas" and isinstance(path[1], int):
        return path[1]

    return None


def _field_name(path: list[Any]) -> str | None:
    names = [part for part in path if isinstance(part, str)]
    if not names:
        return None

    if names[0] == "deltas":
        names = names[1:]

    return ".".join(names) or None


def _build_state(raw: Mapping[str, Any] | None) -> FeatureState | None:
    if raw is None:
        return None

    return FeatureState(
        attributes=dict(raw.get("attributes") or {}),
        geometry=raw.get("geometry"),
        has_geometry="geometry" in raw,
        files_sha256=dict(raw.get("files_sha256") or {}),
        is_snapshot=raw.get("is_snapshot"),
    )


def _build_delta(raw: Mapping[str, Any], index: int) -> Delta:
    local_layer_id = raw["localLayerId"]
    source_layer_id = raw["sourceLayerId"] or local_layer_id
    if not raw["sourceLayerId"]:
        logger.info(
            "Delta %s has an empty sourceLayerId, using %s", index, local_layer_id
        )

    return Delta(
        index=index,
        uuid=raw["uuid"],
        client_id=raw["clientId"],
        local_pk=raw["localPk"],
        source_pk=raw["sourcePk"],
        local_layer_id=local_layer_id,
        source_layer_id=source_layer_id,
        method=DeltaMethod(raw["method"]),
        old=_build_state(raw.get("old")),
        new=_build_state(raw.get("new")),
        export_id=raw.get("exportId"),
        local_layer_crs=raw.get("localLayerCrs"),
        local_layer_name=raw.get("localLayerName"),
        content=raw,
    )


def _check_unique_uuids(deltas: tuple[Delta, ...]) -> None:
    seen: dict[str, int] = {}
    for delta in deltas:
        first = seen.setdefault(delta.uuid.lower(), delta.index)
        if first != delta.index:
            raise InvalidDeltafileError(
                f"Invalid deltafile: deltas[{delta.index}].uuid: {delta.uuid} "
                f"repeats deltas[{first}].uuid",
                reason="duplicate_uuid",
                delta_index=delta.index,
                field="uuid",
            )
