"""What the package does with each layer, and why (reference section 3.2).

The requested action is the layer's ``QFieldSync/cloud_action`` or, when unset,
the default: ``offline`` for vector layers (virtual ones excepted),
``no_action`` for everything else. The outcome then depends on the layer:

* invalid layers are removed, except ``localized:`` layers and web layers,
  which are kept unchanged (the devices reach them; field failure A3);
* a vector layer without a usable single-column primary key cannot be edited
  safely offline: it is handled as ``no_action`` and kept read-only;
* ``offline`` layers whose data the server can read (any OGR file, delimited
  text, SpatiaLite, PostgreSQL tables) are converted into ``data.gpkg``;
* ``copy``, ``keep_existent`` and ``no_action`` copy file-based layers with
  their sidecars and keep online layers as they are;
* ``remove`` removes the layer.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from qfjobs.qgis.checkresult import ErrorCode
from qfjobs.qgis.inspect import LayerReport
from qfjobs.qgis.maplayers import MapLayerXml
from qfjobs.qgis.sourcemodel import SourceKind

CLOUD_ACTION_PROPERTY = "QFieldSync/cloud_action"
#: Providers whose data the server converts into the package's GeoPackage.
CONVERTIBLE_PROVIDERS = frozenset({"ogr", "delimitedtext", "spatialite", "postgres"})
#: Providers of web layers, kept even when the server could not reach them.
WEB_PROVIDERS = frozenset(
    {
        "wms",
        "wfs",
        "wcs",
        "xyz",
        "arcgismapserver",
        "arcgisfeatureserver",
        "oapif",
        "vectortile",
        "mvt",
    }
)
UNSUPPORTED_SUFFIXES = (".ecw",)


class Action(StrEnum):
    """``QFieldSync/cloud_action`` values."""

    OFFLINE = "offline"
    COPY = "copy"
    KEEP_EXISTENT = "keep_existent"
    NO_ACTION = "no_action"
    REMOVE = "remove"


class Outcome(StrEnum):
    """What happens to the layer in the package."""

    OFFLINE = "packaged_offline"
    COPIED = "copied"
    KEPT = "kept_unchanged"
    REMOVED = "removed"


@dataclass(frozen=True)
class LayerDecision:
    layer: MapLayerXml
    report: LayerReport
    action: str
    outcome: Outcome
    reason: str
    read_only: bool = False
    primary_key: str = ""

    @property
    def layer_id(self) -> str:
        return self.layer.layer_id

    def as_feedback(self) -> dict[str, Any]:
        return {
            "id": self.layer_id,
            "name": self.layer.name,
            "provider": self.report.source.provider,
            "action": self.action,
            "outcome": str(self.outcome),
            "read_only": self.read_only,
            "reason": self.reason,
        }


def requested_action(layer: MapLayerXml, report: LayerReport) -> str:
    """The cloud action set on the layer, else the default for its kind."""
    declared = (layer.custom_properties.get(CLOUD_ACTION_PROPERTY) or "").strip()
    if declared:
        return declared
    if layer.is_vector and report.source.kind is not SourceKind.VIRTUAL:
        return Action.OFFLINE
    return Action.NO_ACTION


def decide(layer: MapLayerXml, report: LayerReport) -> LayerDecision:
    """The decision for one layer of the original project."""
    action = requested_action(layer, report)
    source = report.source
    check = report.check

    if source.path.lower().endswith(UNSUPPORTED_SUFFIXES):
        return _decision(
            layer, report, action, Outcome.REMOVED, "ECW data cannot be packaged"
        )
    if not check.is_valid:
        return _invalid(layer, report, action)
    if action not in set(Action):
        return _decision(
            layer,
            report,
            action,
            Outcome.KEPT,
            f'unknown cloud action "{action}": the layer is kept unchanged',
        )
    if action == Action.REMOVE:
        return _decision(
            layer, report, action, Outcome.REMOVED, "its cloud action is remove"
        )

    pk_name = str(report.record.get("qfc_source_data_pk_name") or "")
    read_only = False
    reason_prefix = ""
    if layer.is_vector and source.kind is not SourceKind.VIRTUAL and not pk_name:
        if source.kind in (SourceKind.FILE, SourceKind.DATABASE):
            read_only = True
            reason_prefix = (
                "no usable single-column primary key, so it cannot be edited "
                "safely offline and is kept read-only; "
            )
            action_effective = Action.NO_ACTION
        else:
            action_effective = Action(action)
    else:
        action_effective = Action(action)

    if action_effective == Action.OFFLINE:
        return _offline(layer, report, action, pk_name)
    return _copy_or_keep(layer, report, action, read_only, reason_prefix, pk_name)


def _offline(
    layer: MapLayerXml, report: LayerReport, action: str, pk_name: str
) -> LayerDecision:
    source = report.source
    if source.kind is SourceKind.MEMORY:
        return LayerDecision(
            layer=layer,
            report=report,
            action=action,
            outcome=Outcome.OFFLINE,
            reason=(
                "cloud action offline; memory layer: an empty table with its "
                "fields is created (its features live in QGIS only)"
            ),
            primary_key="fid",
        )
    if source.provider not in CONVERTIBLE_PROVIDERS or (
        source.table is not None and source.table.is_query
    ):
        what = "a query layer" if source.table else f"a {source.provider} layer"
        return _decision(
            layer,
            report,
            action,
            Outcome.KEPT,
            f"{what} cannot be converted on the server; it is kept online",
        )
    return LayerDecision(
        layer=layer,
        report=report,
        action=action,
        outcome=Outcome.OFFLINE,
        reason=f"cloud action offline; primary key {pk_name!r}",
        primary_key=pk_name,
    )


def _copy_or_keep(
    layer: MapLayerXml,
    report: LayerReport,
    action: str,
    read_only: bool,
    prefix: str,
    pk_name: str,
) -> LayerDecision:
    source = report.source
    if source.is_file_based and report.check.filename:
        outcome = Outcome.COPIED
        reason = f"{prefix}cloud action {action}: its files are copied as they are"
    else:
        outcome = Outcome.KEPT
        reason = f"{prefix}cloud action {action}: not a file, kept as it is"
    return LayerDecision(
        layer=layer,
        report=report,
        action=action,
        outcome=outcome,
        reason=reason,
        read_only=read_only,
        primary_key=pk_name,
    )


def _invalid(layer: MapLayerXml, report: LayerReport, action: str) -> LayerDecision:
    source = report.source
    check = report.check
    if check.error_code is ErrorCode.LOCALIZED_DATAPROVIDER or source.is_localized:
        return _decision(
            layer,
            report,
            action,
            Outcome.KEPT,
            "localized data lives on the devices; the layer is kept unchanged",
        )
    if source.kind is SourceKind.ONLINE or source.provider in WEB_PROVIDERS:
        return _decision(
            layer,
            report,
            action,
            Outcome.KEPT,
            "web layer not reachable from the server; kept unchanged for the "
            "devices to reach",
        )
    summary = check.error_summary or check.error_code.value
    return _decision(
        layer, report, action, Outcome.REMOVED, f"invalid layer: {summary}"
    )


def _decision(
    layer: MapLayerXml,
    report: LayerReport,
    action: str,
    outcome: Outcome,
    reason: str,
) -> LayerDecision:
    return LayerDecision(
        layer=layer, report=report, action=action, outcome=outcome, reason=reason
    )
