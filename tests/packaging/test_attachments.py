"""Attachments of a project whose file sits at the storage root or in a folder.

Attachment folders (``DCIM``...) and the paths ``ExternalResource`` fields
hold are relative to the project file's folder; the package keeps the
storage layout, so the packaged project sits in that same folder and the
paths stay valid on the device.
"""

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from lxml import etree

from qfjobs.qgis.attachments import is_attachment, storage_attachment_dirs
from tests.helpers import DATA_DIR, job_list, new_project, upload
from tests.packaging.readback import check_package, package_folder, packaged_root
from tests.packaging.test_layers import layer_xml, points, write_project
from tests.qgis.datagen import tiff_bytes, write_shapefile_lines

BEE_FARMING = DATA_DIR / "qfieldcloud-simple_bee_farming"
LATEST = "/api/v1/packages/{}/latest/"


@pytest.mark.parametrize(
    ("project", "dirs", "expected"),
    [
        ("project.qgs", ["DCIM", "files/docs/"], ["DCIM", "files/docs"]),
        ("sub/project.qgs", ["DCIM"], ["sub/DCIM"]),
        (
            "a/b/project.qgz",
            ["DCIM", "../shared/photos"],
            ["a/b/DCIM", "a/shared/photos"],
        ),
        ("sub/project.qgs", ["..\\photos", "./DCIM", "DCIM/"], ["photos", "sub/DCIM"]),
        ("sub/project.qgs", ["../../out", "/abs", "C:/photos", ".", ""], []),
        (None, ["DCIM"], ["DCIM"]),
    ],
)
def test_storage_attachment_dirs(
    project: str | None, dirs: list[str], expected: list[str]
) -> None:
    assert storage_attachment_dirs(project, dirs) == expected


def test_sub_folder_attachment_matching() -> None:
    dirs = storage_attachment_dirs("sub/project.qgs", ["DCIM"])
    assert is_attachment("sub/DCIM/a.jpg", dirs)
    assert is_attachment("sub/DCIM/deeper/a.jpg", dirs)
    assert not is_attachment("DCIM/a.jpg", dirs)
    assert not is_attachment("sub/DCIMx/a.jpg", dirs)
    assert not is_attachment("other/sub/DCIM/a.jpg", dirs)


def _referenced_photos() -> set[str]:
    """The ``DCIM/...`` paths the fixture's rows hold."""
    found: set[str] = set()
    for gpkg, table in (("bees.gpkg", "apiary"), ("bumblebees.gpkg", "area")):
        with sqlite3.connect(BEE_FARMING / gpkg) as conn:
            rows = conn.execute(f'SELECT DISTINCT picture FROM "{table}"').fetchall()
        found.update(str(row[0]) for row in rows if row[0])
    return found


def _external_resource_fields(root: etree._Element) -> dict[str, set[str]]:
    """Layer id to the fields edited with a project-relative ExternalResource."""
    fields: dict[str, set[str]] = {}
    for layer in root.iter("maplayer"):
        for field in layer.iterfind("fieldConfiguration/field"):
            widget = field.find("editWidget")
            if widget is None or widget.get("type") != "ExternalResource":
                continue
            options = {
                o.get("name"): o.get("value")
                for o in widget.iterfind("config/Option/Option")
            }
            if options.get("RelativeStorage") == "1":
                layer_id = layer.findtext("id") or ""
                fields.setdefault(layer_id, set()).add(field.get("name") or "")
    return fields


def _download_package(
    client: FlaskClient, user: dict[str, Any], project_id: str, target: Path
) -> dict[str, Any]:
    """Download every listed file to ``target/<name>``, as the clients do."""
    latest = client.get(LATEST.format(project_id), headers=user["headers"]).json
    for item in latest["files"]:
        url = LATEST.format(project_id) + f"files/{item['name']}/"
        got = client.get(url, headers=user["headers"])
        assert got.status_code == 200, item["name"]
        path = target / item["name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(got.data)
    files: dict[str, Any] = {item["name"]: item for item in latest["files"]}
    return files


@pytest.mark.parametrize("folder", ["", "sub", "a/b"])
def test_attachments_resolve_from_the_packaged_project(
    client: FlaskClient, make_user, run_jobs, tmp_path: Path, folder: str
) -> None:
    user = make_user()
    project_id = new_project(client, user)
    prefix = f"{folder}/" if folder else ""
    photos = sorted(_referenced_photos())
    assert photos and all(name.startswith("DCIM/") for name in photos)
    for name in photos:
        data = f"photo {name}".encode()
        assert upload(client, user, project_id, prefix + name, data).status_code == 201
    if folder:
        # The storage root's DCIM is not the project's attachment folder.
        upload(client, user, project_id, "DCIM/elsewhere.jpg", b"not attached")
    for name in ("bees.gpkg", "bumblebees.gpkg", "simple_bee_farming.qgs"):
        data = (BEE_FARMING / name).read_bytes()
        assert upload(client, user, project_id, prefix + name, data).status_code == 201

    job = client.post(
        "/api/v1/jobs/",
        data={"project_id": project_id, "type": "package"},
        headers=user["headers"],
    ).json
    run_jobs()
    done = client.get(f"/api/v1/jobs/{job['id']}/", headers=user["headers"]).json
    assert done["status"] == "finished", done["feedback"]

    # An attachment uploaded later queues no processing of the project.
    before = len(job_list(client, user, project_id=project_id))
    late = f"{prefix}DCIM/late.jpg"
    assert upload(client, user, project_id, late, b"late").status_code == 201
    assert len(job_list(client, user, project_id=project_id)) == before

    listing = client.get(f"/api/v1/files/{project_id}/", headers=user["headers"]).json
    flags = {item["name"]: item["is_attachment"] for item in listing}
    assert flags[late] is True
    assert flags[f"{prefix}bees.gpkg"] is False
    if folder:
        assert flags["DCIM/elsewhere.jpg"] is False

    local = tmp_path / "device"
    files = _download_package(client, user, project_id, local)
    attachments = sorted(name for name, item in files.items() if item["is_attachment"])
    assert attachments == sorted([prefix + name for name in photos] + [late])
    packaged = f"{prefix}simple_bee_farming_qfield.qgs"
    assert files[packaged]["is_attachment"] is False
    assert files[f"{prefix}data.gpkg"]["is_attachment"] is False

    project_folder = (local / packaged).parent
    text = (local / packaged).read_bytes()
    root = etree.fromstring(text.split(b"\n", 1)[1])
    resource_fields = _external_resource_fields(root)
    assert resource_fields
    seen: set[str] = set()
    for layer in root.iter("maplayer"):
        layer_id = layer.findtext("id") or ""
        if layer_id not in resource_fields:
            continue
        datasource = layer.findtext("datasource") or ""
        assert datasource.startswith("./data.gpkg|layername="), datasource
        table = datasource.split("layername=")[1].split("|")[0]
        with sqlite3.connect(project_folder / "data.gpkg") as conn:
            for field in resource_fields[layer_id]:
                rows = conn.execute(f'SELECT "{field}" FROM "{table}"').fetchall()
                for (value,) in rows:
                    if not value:
                        continue
                    path = project_folder / value
                    assert path.is_file(), (layer_id, value)
                    assert path.read_bytes() == f"photo {value}".encode()
                    seen.add(value)
    assert seen == set(photos)


def test_sub_folder_project_copies_and_converts_in_place(tmp_path: Path) -> None:
    """Layer files inside and beside the project's folder keep their places."""
    files = tmp_path / "files"
    sub = files / "sub"
    (sub / "data").mkdir(parents=True)
    (sub / "DCIM").mkdir()
    (sub / "DCIM" / "a.jpg").write_bytes(b"photo")
    (files / "maps").mkdir()
    (files / "maps" / "ortho.tif").write_bytes(tiff_bytes())
    points(sub / "data" / "pts.gpkg", 7, driver="GPKG")
    write_shapefile_lines(sub / "lines.shp")
    write_project(
        sub,
        [
            layer_xml("pts", "./data/pts.gpkg"),
            layer_xml("lines", "./lines.shp", wkb="MultiLineString"),
            layer_xml(
                "ortho", "../maps/ortho.tif", "gdal", wkb="", layer_type="raster"
            ),
        ],
        ["pts", "lines", "ortho"],
    )
    out = tmp_path / "out"
    original, build, packaged = package_folder(files, "sub/project.qgs", out)
    check_package(original, build, packaged, out)
    assert build.project_name == "sub/project_qfield.qgs"
    assert build.offline_db == "sub/data.gpkg"
    by_id = {item["id"]: item for item in build.layers}
    assert by_id["pts"]["outcome"] == "packaged_offline"
    assert by_id["lines"]["outcome"] == by_id["ortho"]["outcome"] == "copied"
    assert {"sub/lines.shp", "sub/lines.dbf", "maps/ortho.tif"} <= set(build.files)
    assert "sub/project_qfield_attachments.zip" in build.files
    # attachments travel from storage, not inside the package
    assert not any("DCIM" in name for name in build.files)

    root = packaged_root(out, build)
    sources = {
        node.findtext("id"): node.findtext("datasource")
        for node in root.iter("maplayer")
    }
    assert sources["pts"] == f"./data.gpkg|layername={by_id['pts']['table']}"
    for layer_id in ("lines", "ortho"):
        relative = (sources[layer_id] or "").split("|")[0]
        assert (out / "sub" / relative).resolve().is_file(), layer_id
    assert all(item.check.is_valid for item in packaged.layers)
