"""Which deltas the project permits: the rule behind the ``unpermitted`` status.

A delta is ``unpermitted`` when the QGIS project does not let field users make
it, whoever pushed it:

* its layer is flagged read-only in the project (``readOnly="1"``, the "Read
  only" column of QGIS' layer capabilities): QField opens the layer read-only,
  so no edit of it comes from the project as configured;
* its layer's QFieldSync cloud action is ``remove``: packages leave the layer
  out, so no device holds it to edit;
* it is a ``patch`` that changes the geometry of a layer whose geometries are
  locked (``QFieldSync/is_geometry_locked``).

The apply job marks such a delta ``unpermitted`` with a message naming the
rule and writes nothing of it; the owner can set it back to ``pending`` (for
instance after changing the project) through ``POST deltas/status/``.

Known shortcomings: the reference's per-user rule (a project role that may not
make the delta; a reporter may only create) has nothing to act on, because
only a project's owner can push deltas (there are no collaborators yet). The
expression locks of recent QFieldSync versions
(``QFieldSync/*_locked_expression``) are not evaluated: that needs QGIS'
expression engine. Layers without a usable primary key, which the package job
keeps read-only, are reported ``not_applied`` (no primary key), as before.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from qfjobs.geodata.deltafile import Delta, DeltaMethod
from qfjobs.qgis.details import QFS_PROPERTIES
from qfjobs.qgis.maplayers import MapLayerXml

REMOVE_ACTION = "remove"
TRUE_VALUES = frozenset({"true", "1"})


@dataclass(frozen=True)
class LayerRules:
    """What the project forbids on one layer."""

    #: Why every delta of the layer is refused (None: deltas are permitted).
    refused: str | None = None
    geometry_locked: bool = False


def layer_rules(layers: Iterable[MapLayerXml]) -> dict[str, LayerRules]:
    """The rules of every layer that restricts edits, by layer id."""
    rules: dict[str, LayerRules] = {}
    for layer in layers:
        rule = _rules_of(layer)
        if rule != LayerRules():
            rules[layer.layer_id] = rule
    return rules


def _rules_of(layer: MapLayerXml) -> LayerRules:
    props = layer.custom_properties
    refused = None
    if layer.read_only:
        refused = f'Layer "{layer.name}" is read-only in the QGIS project'
    elif _prop(props, "qfs_cloud_action").lower() == REMOVE_ACTION:
        refused = (
            f'Layer "{layer.name}" is not given to field devices (its QFieldSync'
            ' cloud action is "remove")'
        )
    locked = _prop(props, "qfs_is_geometry_locked").lower() in TRUE_VALUES
    return LayerRules(refused=refused, geometry_locked=locked)


def _prop(props: Mapping[str, str], key: str) -> str:
    return (props.get(QFS_PROPERTIES[key]) or "").strip()


def refusal(delta: Delta, rules: Mapping[str, LayerRules]) -> str | None:
    """Why the project does not permit ``delta``; None when it does."""
    rule = rules.get(delta.source_layer_id)
    if rule is None:
        return None
    if rule.refused is not None:
        return f"{rule.refused}: its features may not be edited"
    if rule.geometry_locked and _changes_geometry(delta):
        return (
            "The geometries of this layer are locked in the QGIS project"
            " (QFieldSync/is_geometry_locked): a patch may not change them"
        )
    return None


def _changes_geometry(delta: Delta) -> bool:
    if delta.method is not DeltaMethod.PATCH or delta.new is None:
        return False
    if not delta.new.has_geometry:
        return False
    old = delta.old.geometry if delta.old is not None else None
    return delta.new.geometry != old
