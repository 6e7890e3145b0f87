"""Large synthetic data for the kill test and the benchmark.

:func:`make_points_gpkg` copies the corpus ``testdata.gpkg`` and fills its
``points_xy`` layer with ``rows`` points (``fid`` 1..rows, ``int`` = fid,
``str`` = ``p<fid>``, geometry ``POINT (fid fid)``), keeping the GeoPackage's
spatial index right. :func:`patch_deltafile` writes deltas against it.
"""

import json
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from qfjobs.geodata.edits_blobs import encode_gpkg
from qfjobs.geodata.edits_sqlfuncs import register_gpkg_functions
from qfjobs.geodata.edits_wkt import parse_wkt
from tests.helpers import DELTA_PROJECT

POINTS_XY = "points_xy_897d5ed7_b810_4624_abe3_9f7c0a93d6a1"
CLIENT = "cd517e24-a520-4021-8850-e5af70e3a612"


def make_points_gpkg(path: Path, rows: int) -> Path:
    shutil.copy(DELTA_PROJECT / "testdata.gpkg", path)
    connection = sqlite3.connect(path)
    register_gpkg_functions(connection)
    with connection:
        connection.execute("DELETE FROM points_xy")
        connection.executemany(
            "INSERT INTO points_xy (fid, int, dbl, str, geom) VALUES (?, ?, ?, ?, ?)",
            (
                (fid, fid, fid / 10, f"p{fid}", point_blob(fid))
                for fid in range(1, rows + 1)
            ),
        )
    connection.close()
    return path


def point_blob(fid: int) -> bytes:
    return bytes(encode_gpkg(parse_wkt(f"POINT ({fid} {fid})"), 4326))


def patch_delta(fid: int, new_int: int, geometry: bool = False) -> dict[str, Any]:
    old: dict[str, Any] = {"attributes": {"int": fid, "str": f"p{fid}"}}
    new: dict[str, Any] = {"attributes": {"int": new_int, "str": f"p{fid}"}}
    if geometry:
        old["geometry"] = f"POINT ({fid} {fid})"
        new["geometry"] = f"POINT ({fid} {fid + 0.5})"
    return {
        "uuid": str(uuid.uuid4()),
        "clientId": CLIENT,
        "localPk": str(fid),
        "sourcePk": str(fid),
        "localLayerId": POINTS_XY,
        "sourceLayerId": POINTS_XY,
        "method": "patch",
        "old": old,
        "new": new,
    }


def create_delta(local_pk: int, marker: int) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "clientId": CLIENT,
        "localPk": str(local_pk),
        "sourcePk": "",
        "localLayerId": POINTS_XY,
        "sourceLayerId": POINTS_XY,
        "method": "create",
        "new": {
            "geometry": f"POINT ({marker} 0)",
            "attributes": {"int": marker, "str": f"created-{marker}"},
        },
    }


def deltafile(project_id: str, deltas: list[dict[str, Any]]) -> bytes:
    document = {
        "version": "1.0",
        "id": str(uuid.uuid4()),
        "project": project_id,
        "files": [],
        "deltas": deltas,
    }
    return json.dumps(document).encode()
