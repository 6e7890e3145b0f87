"""Benchmark: the package job's conversion against GDAL's own ``ogr2ogr``.

Generates (once, into ``--workdir``) a 1,000,000-point shapefile and a
200,000-polygon GeoJSON, each with an integer ``fid`` attribute so both are
editable offline and converted, not copied. For each file it then runs, each
in its own process so time and memory are measured alone:

* qfjobs: :func:`qfjobs.packaging.builder.build_package` on a one-layer
  project (layer checks, conversion into data.gpkg, project rewrite);
* ``ogr2ogr -f GPKG`` from Debian's ``gdal-bin`` on the same file.

It prints wall time and peak RSS (``wait4`` rusage of the child) of both and
the ratio. ``ogr2ogr`` must be installed (``apt-get install gdal-bin``); the
script says so and stops when it is not.

    .venv/bin/python bench/bench_package.py [--workdir DIR] [--points N]
        [--polygons N]
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

PROJECT = """<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis projectname="" version="3.34.0-Prizren">
  <projectCrs><spatialrefsys><authid>EPSG:4326</authid></spatialrefsys></projectCrs>
  <layer-tree-group><layer-tree-layer id="l1" name="l1"/></layer-tree-group>
  <projectlayers>
    <maplayer type="vector" wkbType="{wkb}">
      <id>l1</id><datasource>./{name}</datasource><layername>l1</layername>
      <srs><spatialrefsys><authid>EPSG:4326</authid></spatialrefsys></srs>
      <provider encoding="UTF-8">ogr</provider>
    </maplayer>
  </projectlayers>
</qgis>
"""

PACKAGE_SNIPPET = """
import sys, warnings
from pathlib import Path
warnings.simplefilter("ignore")
from qfjobs.packaging.builder import build_package
from qfjobs.qgis.inspect import inspect_project
from qfjobs.qgis.pgcheck import PgOptions
folder, project, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
report = inspect_project(folder / project, data_root=folder)
build = build_package(report, project, folder, out, PgOptions(), "bench")
layer = build.layers[0]
assert layer["outcome"] == "packaged_offline", layer
print(layer["feature_count"])
"""

CHUNK = 100_000


def generate_points(path: Path, count: int) -> None:
    import numpy as np
    import pyogrio.raw
    import shapely

    rng = np.random.default_rng(1)
    for start in range(0, count, CHUNK):
        n = min(CHUNK, count - start)
        xy = rng.uniform((5.9, 45.8), (10.5, 47.8), size=(n, 2))
        geometry = shapely.to_wkb(shapely.points(xy))
        fields = [
            np.arange(start + 1, start + n + 1, dtype=np.int64),
            np.array([f"tree {i}" for i in range(start, start + n)], dtype=object),
            rng.uniform(0, 40, n),
        ]
        pyogrio.raw.write(
            str(path),
            geometry,
            fields,
            ["fid", "name", "height"],
            driver="ESRI Shapefile",
            geometry_type="Point",
            crs="EPSG:4326",
            append=start > 0,
        )


def generate_polygons(path: Path, count: int) -> None:
    import numpy as np
    import pyogrio.raw
    import shapely

    side = int(np.ceil(np.sqrt(count)))
    i = np.arange(count)
    x0 = 6.0 + (i % side) * 0.001
    y0 = 46.0 + (i // side) * 0.001
    geometry = shapely.to_wkb(shapely.box(x0, y0, x0 + 0.0009, y0 + 0.0009))
    fields = [
        np.arange(1, count + 1, dtype=np.int64),
        np.array([f"parcel {k}" for k in range(count)], dtype=object),
    ]
    pyogrio.raw.write(
        str(path),
        geometry,
        fields,
        ["fid", "label"],
        driver="GeoJSON",
        geometry_type="Polygon",
        crs="EPSG:4326",
    )


def measure(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB and stdout of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    out = process.stdout.read().decode()
    err = process.stderr.read().decode()
    _pid, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({process.returncode}):\n{err}")
    return elapsed, usage.ru_maxrss / 1024, out.strip()


def ogr2ogr_version() -> str:
    binary = shutil.which("ogr2ogr")
    if binary is None:
        raise SystemExit(
            "ogr2ogr is not installed: run `apt-get install gdal-bin` (Debian) "
            "and start the benchmark again"
        )
    version = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    package = subprocess.run(
        ["dpkg", "-S", binary], capture_output=True, text=True, check=False
    ).stdout.strip()
    return f"{version} ({package or 'not from a Debian package'})"


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--generate":
        generator = (
            generate_points if sys.argv[2].endswith(".shp") else (generate_polygons)
        )
        generator(Path(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/qfjobs-bench-pkg"))
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--polygons", type=int, default=200_000)
    args = parser.parse_args()
    print(f"ogr2ogr: {ogr2ogr_version()}")

    data = args.workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    cases = [
        ("points.shp", "Point", args.points),
        ("polygons.geojson", "Polygon", args.polygons),
    ]
    print("| file | features | tool | wall s | peak RSS MB |")
    print("|---|---|---|---|---|")
    totals = {"qfjobs": 0.0, "ogr2ogr": 0.0}
    for name, wkb, count in cases:
        folder = data / f"{Path(name).stem}_{count}"
        folder.mkdir(exist_ok=True)
        if not (folder / name).exists():
            # In a child process, so this process stays small: a forked child
            # starts with its parent's resident pages in its peak RSS.
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--generate",
                    name,
                    str(folder / name),
                    str(count),
                ],
                check=True,
            )
        (folder / "project.qgs").write_text(PROJECT.format(wkb=wkb, name=name))

        out = args.workdir / "out-qfjobs"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        ours = measure(
            [
                sys.executable,
                "-c",
                PACKAGE_SNIPPET,
                str(folder),
                "project.qgs",
                str(out),
            ]
        )
        assert int(ours[2]) == count, ours
        target = args.workdir / "ogr2ogr.gpkg"
        target.unlink(missing_ok=True)
        theirs = measure(["ogr2ogr", "-f", "GPKG", str(target), str(folder / name)])
        totals["qfjobs"] += ours[0]
        totals["ogr2ogr"] += theirs[0]
        print(f"| {name} | {count} | qfjobs package | {ours[0]:.1f} | {ours[1]:.0f} |")
        print(
            f"| {name} | {count} | ogr2ogr -f GPKG | {theirs[0]:.1f} | "
            f"{theirs[1]:.0f} |"
        )
        print(f"| {name} | | ratio | {ours[0] / theirs[0]:.2f} | |")
    ratio = totals["qfjobs"] / totals["ogr2ogr"]
    print(
        f"total: qfjobs {totals['qfjobs']:.1f} s, ogr2ogr {totals['ogr2ogr']:.1f} s,"
        f" ratio {ratio:.2f}"
    )


if __name__ == "__main__":
    main()
