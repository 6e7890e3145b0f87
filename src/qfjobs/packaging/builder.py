"""Building a package into one folder: :func:`build_package`.

Input: the project's files laid out in ``files_dir`` and the inspected
original project (every layer checked, as ``process_projectfile`` does).
Output, in ``package_dir``, mirroring the storage layout so relative paths
keep working:

* ``<folder of the project>/<stem>_qfield.qgs`` (also from a ``.qgz``);
* ``<folder of the project>/data.gpkg`` with one table per distinct source
  of the ``offline`` layers (only when there is one);
* the files of copied layers and rasters, with their sidecars, at their own
  paths;
* ``<stem>_qfield_attachments.zip`` (the QGIS project-attachment archive:
  the side files of a ``.qgz``, else empty), the project plugin
  ``<stem>.qml`` and its ``<stem>_<lang>.qm`` translations.

Attachment folders (``DCIM`` ...) are not copied: the packages API lists and
serves them from project storage. They are relative to the project file's
folder (:func:`qfjobs.qgis.attachments.storage_attachment_dirs`), and the
packaged project sits in that same folder, so the paths ``ExternalResource``
fields hold stay valid from it.

Any table that cannot be written fails the whole build with a
:class:`~qfjobs.errors.DataSourceError` naming the layer: a package with a
silently missing or empty layer is worse than the previous package.

A layer's filter stays a filter when SQLite evaluates it as the source
does; otherwise it is applied while packaging (the layer gets a table of its
own) or, for QGIS expressions nothing here can evaluate, removed
(:mod:`qfjobs.packaging.layerfilters`); the layer's feedback says which.

Known shortcomings:

* when a new fid column (``fid_1``...) is added, its form widget is not
  set to hidden (QFieldSync hides it; QField shows it read-only);
* the project plugin and translations keep their names (``<stem>.qml``,
  as the reference does), not ``<stem>_qfield.qml``.
"""

import logging
import re
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfjobs.geodata import gpkg_catalog
from qfjobs.geodata.feature_batches import GEOMETRY_COLUMN, FidSource
from qfjobs.geodata.fieldtypes import written_fields
from qfjobs.geodata.gpkg_export import TableExport, TableRequest, export_table
from qfjobs.geodata.sources import BBox, Source
from qfjobs.packaging import projectxml
from qfjobs.packaging.aoi import AreaOfInterest, read_area_of_interest
from qfjobs.packaging.decisions import LayerDecision, Outcome, decide
from qfjobs.packaging.exportsources import export_source, grouping_key, table_base_name
from qfjobs.packaging.filecopy import copy_with_sidecars
from qfjobs.packaging.layerfilters import FilterCheck, FilterOutcome, check_filter
from qfjobs.packaging.memorylayers import write_memory_table
from qfjobs.qgis.inspect import ProjectReport
from qfjobs.qgis.maplayers import read_map_layers
from qfjobs.qgis.pgcheck import PgOptions
from qfjobs.qgis.redaction import redact
from qfjobs.qgis.sourcemodel import SourceKind

logger = logging.getLogger(__name__)

OFFLINE_DB_NAME = "data.gpkg"
PACKAGED_SUFFIX = "_qfield"
_TABLE_CHARS = re.compile(r"[^A-Za-z0-9_]+")
_RESERVED = ("gpkg_", "rtree_", "sqlite_")


@dataclass
class PackageBuild:
    """What :func:`build_package` produced; ``layers`` is the per-layer feedback."""

    project_name: str
    offline_db: str | None
    layers: list[dict[str, Any]]
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Table:
    name: str
    #: None for a memory layer (an empty table is created).
    source: Source | None
    primary_key: str
    decisions: list[LayerDecision]
    export: TableExport | None = None
    #: A layer filter applied while reading the source (see layerfilters).
    where: str | None = None


def packaged_name(project_filename: str) -> str:
    """``folder/<stem>_qfield.qgs`` for ``folder/<stem>.qgs`` or ``.qgz``."""
    folder, _, name = project_filename.rpartition("/")
    stem = name.rsplit(".", 1)[0]
    packaged = f"{stem}{PACKAGED_SUFFIX}.qgs"
    return f"{folder}/{packaged}" if folder else packaged


def build_package(
    report: ProjectReport,
    project_filename: str,
    files_dir: Path,
    package_dir: Path,
    pg_options: PgOptions,
    job_label: str = "",
) -> PackageBuild:
    """Write the package of the inspected project into ``package_dir``.

    ``project_filename`` is the project file's path inside the project
    (``/``-separated); ``files_dir`` holds the project files.
    """
    project = report.project
    root = project.root
    layers = {layer.layer_id: layer for layer in read_map_layers(root)}
    decisions = [
        decide(layers[item.layer_id], item)
        for item in report.layers
        if item.layer_id in layers
    ]
    qgs_name = packaged_name(project_filename)
    folder = qgs_name.rpartition("/")[0]
    project_folder = package_dir / folder if folder else package_dir
    project_folder.mkdir(parents=True, exist_ok=True)
    build = PackageBuild(project_name=qgs_name, offline_db=None, layers=[])
    feedback: dict[str, dict[str, Any]] = {}
    area = read_area_of_interest(root)

    copied: set[str] = set()
    for decision in decisions:
        feedback[decision.layer_id] = decision.as_feedback()
        if decision.outcome is Outcome.COPIED:
            names = copy_with_sidecars(
                Path(decision.report.check.filename), files_dir, package_dir
            )
            copied.update(names)
            feedback[decision.layer_id]["files"] = names

    offline = [d for d in decisions if d.outcome is Outcome.OFFLINE]
    db_name = _offline_db_name(folder, copied)
    new_sources: dict[str, tuple[str, str]] = {}
    if offline:
        tables, used = _plan_tables(offline, pg_options)
        gpkg = project_folder / db_name
        for table in tables:
            table.export = _write_table(gpkg, table, area, job_label)
        checks = _settle_filters(gpkg, tables, used, area, job_label)
        for table in tables:
            assert table.export is not None
            for decision in table.decisions:
                check = checks.get(decision.layer_id)
                datasource = f"./{db_name}|layername={table.name}"
                if check is not None and check.stays_on_layer:
                    datasource += f"|subset={check.subset}"
                new_sources[decision.layer_id] = (datasource, "ogr")
                feedback[decision.layer_id].update(_table_feedback(table))
                build.warnings.extend(
                    f'layer "{decision.layer.name}": {text}'
                    for text in table.export.warnings
                )
                if check is not None:
                    feedback[decision.layer_id]["filter"] = check.as_feedback()
                    if not check.stays_on_layer:
                        build.warnings.append(
                            f'layer "{decision.layer.name}": filter '
                            f"`{check.subset}`: {check.reason}"
                        )
        build.offline_db = f"{folder}/{db_name}" if folder else db_name

    _rewrite_project(report, decisions, new_sources, db_name, project_filename)
    (project_folder / Path(qgs_name).name).write_bytes(
        projectxml.serialise(project.tree)
    )
    _write_side_files(report, project_filename, files_dir, package_dir, qgs_name)

    build.layers = [feedback[d.layer_id] for d in decisions]
    build.files = sorted(
        path.relative_to(package_dir).as_posix()
        for path in package_dir.rglob("*")
        if path.is_file()
    )
    return build


def _offline_db_name(folder: str, copied: set[str]) -> str:
    """``data.gpkg``, unless a copied layer file already has that name."""
    name = OFFLINE_DB_NAME
    counter = 1
    while (f"{folder}/{name}" if folder else name) in copied:
        name = f"data_{counter}.gpkg"
        counter += 1
    return name


def _plan_tables(
    offline: list[LayerDecision], pg_options: PgOptions
) -> tuple[list[_Table], set[str]]:
    """One table per distinct source, with unique readable names (and those names,
    lower-case)."""
    tables: dict[tuple[object, ...], _Table] = {}
    used: set[str] = set()
    for decision in offline:
        if decision.report.source.kind is SourceKind.MEMORY:
            name = _unique_name(decision.layer.name or "memory", used)
            tables[("memory", decision.layer_id)] = _Table(
                name, None, "fid", [decision]
            )
            continue
        source = export_source(decision.layer, decision.report, pg_options)
        key = grouping_key(source)
        if key in tables:
            tables[key].decisions.append(decision)
            continue
        name = _unique_name(table_base_name(decision.layer, source), used)
        tables[key] = _Table(name, source, decision.primary_key, [decision])
    return list(tables.values()), used


def _unique_name(base: str, used: set[str]) -> str:
    name = _TABLE_CHARS.sub("_", base).strip("_") or "layer"
    if name.lower().startswith(_RESERVED) or name[0].isdigit():
        name = f"t_{name}"
    candidate, counter = name, 2
    while candidate.lower() in used:
        candidate = f"{name}_{counter}"
        counter += 1
    used.add(candidate.lower())
    return candidate


def _settle_filters(
    gpkg: Path,
    tables: list[_Table],
    used: set[str],
    area: AreaOfInterest | None,
    job_label: str,
) -> dict[str, FilterCheck]:
    """Check every layer filter on its written table; split off the layers
    whose filter must be applied while packaging. Returns the checks by
    layer id; ``tables`` is updated in place."""
    checks: dict[str, FilterCheck] = {}
    for table in list(tables):
        moved = []
        for decision in table.decisions:
            subset = decision.report.source.subset
            if not subset or not subset.strip():
                continue
            check = check_filter(
                gpkg,
                table.name,
                subset,
                table.source,
                decision.report.source.provider,
                _table_bbox(table, area),
            )
            checks[decision.layer_id] = check
            logger.info(
                '%s: layer "%s": filter %s: %s',
                job_label,
                decision.layer.name,
                check.outcome,
                check.reason,
            )
            if check.outcome is FilterOutcome.APPLIED_AT_SOURCE:
                moved.append(decision)
        if moved:
            _split_filtered(gpkg, tables, table, moved, used, area, job_label)
    return checks


def _split_filtered(
    gpkg: Path,
    tables: list[_Table],
    table: _Table,
    moved: list[LayerDecision],
    used: set[str],
    area: AreaOfInterest | None,
    job_label: str,
) -> None:
    """Give each layer of ``moved`` a table of the rows its filter selects.

    When no layer is left on ``table`` it is dropped and its name reused.
    """
    moved_ids = {decision.layer_id for decision in moved}
    table.decisions = [d for d in table.decisions if d.layer_id not in moved_ids]
    reuse: str | None = None
    if not table.decisions:
        gpkg_catalog.drop_table(gpkg, table.name)
        tables.remove(table)
        reuse = table.name
    for decision in moved:
        name = reuse or _unique_name(f"{table.name}_{decision.layer.name}", used)
        reuse = None
        filtered = _Table(
            name,
            table.source,
            decision.primary_key or table.primary_key,
            [decision],
            where=decision.report.source.subset,
        )
        filtered.export = _write_table(gpkg, filtered, area, job_label)
        tables.append(filtered)


def _table_bbox(table: _Table, area: AreaOfInterest | None) -> BBox | None:
    """The area of interest in the table's layer CRS (None: no clipping)."""
    first = table.decisions[0]
    if area is None or not first.layer.is_vector:
        return None
    return area.bbox_in(first.layer.crs or first.report.check.crs or "")


def _write_table(
    gpkg: Path, table: _Table, area: AreaOfInterest | None, job_label: str
) -> TableExport:
    first = table.decisions[0]
    if table.source is None:
        return _write_memory_table(gpkg, table, job_label)
    names = ", ".join(f'"{d.layer.name}"' for d in table.decisions)
    where = " (rows matching its filter)" if table.where else ""
    logger.info(
        "%s: converting %s into table %s%s", job_label, names, table.name, where
    )
    result = export_table(
        gpkg,
        TableRequest(
            source=table.source,
            table=table.name,
            primary_key=table.primary_key or None,
            bbox=_table_bbox(table, area),
            description=first.layer.name,
            where=table.where,
        ),
    )
    logger.info(
        "%s: table %s: %s features written, %s skipped",
        job_label,
        table.name,
        result.feature_count,
        result.skipped_count,
    )
    for item in result.skipped:
        logger.warning(
            "%s: table %s: %s %s(s) skipped: %s",
            job_label,
            table.name,
            item.count,
            item.scope,
            item.reason,
        )
    return result


def _write_memory_table(gpkg: Path, table: _Table, job_label: str) -> TableExport:
    decision = table.decisions[0]
    started = time.perf_counter()
    logger.info(
        "%s: empty table %s for memory layer %s",
        job_label,
        table.name,
        decision.layer.name,
    )
    geometry_type = write_memory_table(
        gpkg, table.name, decision.report.source, decision.layer.crs
    )
    crs = decision.report.source.params.get("crs") or decision.layer.crs or None
    return TableExport(
        table=table.name,
        source=f"memory layer {decision.layer.name}",
        feature_count=0,
        geometry_type=geometry_type,
        geometry_column=GEOMETRY_COLUMN if geometry_type else None,
        crs=crs if geometry_type else None,
        fid_column="fid",
        fid_source=FidSource.GENERATED,
        fields=written_fields(gpkg, table.name),
        renamed_fields={},
        skipped=(),
        warnings=(),
        spatial_index=None,
        elapsed_seconds=time.perf_counter() - started,
    )


def _table_feedback(table: _Table) -> dict[str, Any]:
    export = table.export
    assert export is not None
    return {
        "table": table.name,
        "feature_count": export.feature_count,
        "source_feature_count": table.decisions[0].report.check.feature_count,
        "geometry_type": export.geometry_type.pyogrio_name
        if export.geometry_type
        else None,
        "crs": export.crs,
        "fid_column": export.fid_column,
        "fid_source": str(export.fid_source),
        "renamed_fields": dict(export.renamed_fields),
        "skipped": [
            {"reason": item.reason, "count": item.count, "scope": item.scope}
            for item in export.skipped
        ],
        "warnings": list(export.warnings),
        "shared_with": [d.layer_id for d in table.decisions[1:]],
    }


def _rewrite_project(
    report: ProjectReport,
    decisions: list[LayerDecision],
    new_sources: dict[str, tuple[str, str]],
    db_name: str,
    project_filename: str,
) -> None:
    project = report.project
    root = project.root
    version = project.version_tuple
    for decision in decisions:
        element = decision.layer.element
        if element is None or decision.outcome is Outcome.REMOVED:
            continue
        set_prop = projectxml.set_custom_property
        set_prop(element, "QFieldSync/remoteLayerId", decision.layer_id, version)
        if decision.layer_id in new_sources:
            datasource, provider = new_sources[decision.layer_id]
            original = decision.report.source
            set_prop(element, "isOfflineEditable", "true", version)
            set_prop(element, "remoteSource", redact(original.raw), version)
            set_prop(element, "remoteProvider", original.provider, version)
            set_prop(element, "layerNameSuffix", "", version)
            projectxml.set_datasource(element, datasource, provider)
        if decision.primary_key:
            set_prop(
                element,
                "QFieldSync/sourceDataPrimaryKeys",
                decision.primary_key,
                version,
            )
        if decision.read_only:
            element.set("readOnly", "1")
            set_prop(element, "QFieldSync/unsupported_source_pk", "1", version)

    removed = {d.layer_id for d in decisions if d.outcome is Outcome.REMOVED}
    projectxml.remove_layers(root, removed)
    projectxml.repoint_references(root, new_sources)
    projectxml.set_project_entry(root, "qfieldsync", "createBaseMap", "false", "bool")
    projectxml.set_project_entry(
        root, "qfieldsync", "originalProjectPath", project_filename, "QString"
    )
    if new_sources:
        projectxml.set_project_entry(
            root, "OfflineEditingPlugin", "OfflineDbPath", f"./{db_name}", "QString"
        )
    projectxml.set_project_entry(root, "Paths", "Absolute", "false", "bool")
    projectxml.disable_project_automation(root)


def _write_side_files(
    report: ProjectReport,
    project_filename: str,
    files_dir: Path,
    package_dir: Path,
    qgs_name: str,
) -> None:
    """The attachments archive, the project plugin and its translations."""
    source_path = files_dir / project_filename
    stem = source_path.name.rsplit(".", 1)[0]
    target_folder = (package_dir / qgs_name).parent
    archive = target_folder / f"{stem}{PACKAGED_SUFFIX}_attachments.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as target:
        if report.project.is_zipped:
            _copy_qgz_side_members(source_path, report.project.qgs_member, target)

    for item in sorted(source_path.parent.iterdir()):
        name = item.name
        is_plugin = name == f"{stem}.qml"
        is_translation = (
            name.startswith(f"{stem}_") and name.endswith(".qm") and item.is_file()
        )
        if (is_plugin or is_translation) and item.is_file():
            (target_folder / name).write_bytes(item.read_bytes())


def _copy_qgs_side_guard(name: str) -> bool:
    parts = name.split("/")
    return not (name.startswith("/") or ".." in parts or "\\" in name or not name)


def _copy_qgz_side_members(
    qgz: Path, qgs_member: str | None, target: zipfile.ZipFile
) -> None:
    """Copy the ``.qgz``'s side files (styles databases...) into the archive.

    The archive was screened when the project was opened (member names,
    sizes, ratios); names are checked again before being written.
    """
    with zipfile.ZipFile(qgz) as source:
        for info in source.infolist():
            if info.is_dir() or info.filename == qgs_member:
                continue
            if not _copy_qgs_side_guard(info.filename):
                continue
            with source.open(info) as member, target.open(info.filename, "w") as out:
                while chunk := member.read(1024 * 1024):
                    out.write(chunk)
