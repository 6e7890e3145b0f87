"""The result of checking one data source for real.

A :class:`SourceCheck` carries the validity fields of the reference's layer
record (section 2.3/2.4: ``error_code``, ``error_summary``...) plus what
reading the data told us (geometry type, CRS, feature count, fields, the
provider's primary key). The helpers build the common failure shapes so the
wording stays the same across checkers.
"""

from dataclasses import dataclass, replace
from enum import StrEnum


class ErrorCode(StrEnum):
    """``error_code`` values of the reference layer record."""

    NO_ERROR = "no_error"
    INVALID_LAYER = "invalid_layer"
    INVALID_DATAPROVIDER = "invalid_dataprovider"
    LOCALIZED_DATAPROVIDER = "localized_dataprovider"
    MISSING_DATAPROVIDER = "missing_dataprovider"


@dataclass(frozen=True)
class FieldInfo:
    """One attribute: its name and a type name (``Integer64``, ``String``...)."""

    name: str
    type: str


@dataclass(frozen=True)
class SourceCheck:
    """Outcome of a data source check.

    ``filename`` is the absolute local path for file sources ("" otherwise).
    ``primary_keys`` are the attributes the provider itself reports as key
    (GPKG ``fid``, a PostGIS primary key, ``key=``); the libqfieldsync rule
    in :mod:`qfjobs.qgis.primarykey` turns them into one usable name.
    ``warnings`` are human-readable notes for the job log (already redacted).
    """

    is_valid: bool
    error_code: ErrorCode = ErrorCode.NO_ERROR
    error_summary: str = ""
    error_message: str = ""
    provider_error_summary: str | None = None
    provider_error_message: str | None = None
    filename: str = ""
    geometry_type: str | None = None
    crs: str | None = None
    feature_count: int | None = None
    fields: tuple[FieldInfo, ...] = ()
    primary_keys: tuple[str, ...] = ()
    driver: str | None = None
    warnings: tuple[str, ...] = ()

    def with_warning(self, text: str) -> "SourceCheck":
        return replace(self, warnings=(*self.warnings, text))


def invalid_provider(
    summary: str, message: str = "", *, filename: str = ""
) -> SourceCheck:
    """The provider could not open the source (``invalid_dataprovider``)."""
    return SourceCheck(
        is_valid=False,
        error_code=ErrorCode.INVALID_DATAPROVIDER,
        error_summary=summary,
        error_message=message,
        provider_error_summary=summary,
        provider_error_message=message,
        filename=filename,
    )


def file_missing(display_path: str, filename: str, reason: str = "") -> SourceCheck:
    """``File "<path>" missing.``, as the reference words it."""
    check = invalid_provider(
        f'File "{display_path}" missing.', reason, filename=filename
    )
    return replace(check, provider_error_summary="Data source not found")


def missing_provider(provider: str, reason: str) -> SourceCheck:
    """No provider available on this server for ``provider``."""
    return SourceCheck(
        is_valid=False,
        error_code=ErrorCode.MISSING_DATAPROVIDER,
        error_summary=f'No data provider available for "{provider}".',
        error_message=reason,
        provider_error_summary="No data provider available",
        provider_error_message=reason,
    )


def localized(filename: str) -> SourceCheck:
    """Localized data lives on the devices only, never on the server."""
    return SourceCheck(
        is_valid=False,
        error_code=ErrorCode.LOCALIZED_DATAPROVIDER,
        error_summary=(
            f'Localized data source "{filename}" is only available on devices.'
        ),
        error_message=(
            "Layers on localized paths read their data from the device's shared "
            "datasets folder; the server has no copy."
        ),
        provider_error_summary="Localized data source",
        provider_error_message="",
        filename=filename,
    )


def invalid_layer(
    summary: str, message: str = "", *, filename: str = ""
) -> SourceCheck:
    """The provider worked but the layer itself is not usable."""
    return SourceCheck(
        is_valid=False,
        error_code=ErrorCode.INVALID_LAYER,
        error_summary=summary,
        error_message=message,
        filename=filename,
    )
