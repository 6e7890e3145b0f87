"""delta_apply throughput: 10,000 patch deltas on a 100,000-row GeoPackage.

Applies the deltas with the ``delta_apply`` engine (``apply_deltas``: conflict
check of every delta against the stored row, read ahead 500 keys a query,
type-aware values, one transaction, GeoPackage metadata) and, in the same run
on a copy of the same file, the same updates with a plain ``sqlite3``
``executemany`` in one transaction. Both include opening the file and
committing. Parsing the deltafile (JSON + schema validation, done once at
upload) is timed apart.

    .venv/bin/python bench/bench_delta_apply.py [--rows 100000] [--deltas 10000]
"""

import argparse
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.deltas.bigdata import (  # noqa: E402
    POINTS_XY,
    deltafile,
    make_points_gpkg,
    patch_delta,
)

from qfjobs.geodata.deltafile import parse_deltafile  # noqa: E402
from qfjobs.geodata.deltas_apply import apply_deltas  # noqa: E402
from qfjobs.geodata.deltas_results import DeltaStatus  # noqa: E402
from qfjobs.geodata.edits_sqlfuncs import register_gpkg_functions  # noqa: E402
from qfjobs.geodata.edits_target import FileLayer  # noqa: E402


def plain_update(path: Path, updates: list[tuple[int, str, int]]) -> float:
    started = time.perf_counter()
    connection = sqlite3.connect(path, isolation_level=None)
    # The GeoPackage's rtree triggers name ST_* functions; SQLite needs them
    # registered even when they do not fire (GDAL/SpatiaLite provide them).
    register_gpkg_functions(connection)
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(
        "UPDATE points_xy SET int = ?, str = ? WHERE fid = ?", updates
    )
    connection.execute("COMMIT")
    connection.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--deltas", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="qfjobs-bench-delta-"))
    try:
        base = make_points_gpkg(work / "base.gpkg", args.rows)
        step = max(1, args.rows // args.deltas)
        fids = [1 + i * step for i in range(args.deltas)]
        raw = [patch_delta(fid, fid + 1_000_000) for fid in fids]
        for delta in raw:
            delta["new"]["attributes"]["str"] = f"changed-{delta['localPk']}"
        data = deltafile(str(uuid.uuid4()), raw)
        updates = [(fid + 1_000_000, f"changed-{fid}", fid) for fid in fids]

        engine_times, plain_times, parse_times = [], [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            parsed = parse_deltafile(data)
            parse_times.append(time.perf_counter() - started)

            target = work / "engine.gpkg"
            shutil.copy(base, target)
            layer = FileLayer(target, "points_xy", "fid", True)
            started = time.perf_counter()
            result = apply_deltas(
                parsed.deltas, {POINTS_XY: layer}, overwrite_conflicts=False
            )
            engine_times.append(time.perf_counter() - started)
            assert result.count(DeltaStatus.APPLIED) == args.deltas, result.outcomes[0]
            check(target, updates)

            plain = work / "plain.gpkg"
            shutil.copy(base, plain)
            plain_times.append(plain_update(plain, updates))
            check(plain, updates)

        engine = statistics.median(engine_times)
        plain_s = statistics.median(plain_times)
        parse = statistics.median(parse_times)
        print(f"rows {args.rows}, patch deltas {args.deltas}, median of {args.repeat}")
        print(
            f"delta_apply engine : {engine:.3f} s  {args.deltas / engine:,.0f} deltas/s"
        )
        rate = args.deltas / plain_s
        print(f"plain executemany  : {plain_s:.3f} s  {rate:,.0f} updates/s")
        print(f"engine / plain     : {engine / plain_s:.1f}x")
        print(
            f"parse + validate   : {parse:.3f} s  {args.deltas / parse:,.0f} deltas/s"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check(path: Path, updates: list[tuple[int, str, int]]) -> None:
    connection = sqlite3.connect(path)
    sample = updates[:: max(1, len(updates) // 100)]
    for value, text, fid in sample:
        row = connection.execute(
            "SELECT int, str FROM points_xy WHERE fid = ?", (fid,)
        ).fetchone()
        assert row == (value, text), (fid, row)
    connection.close()


if __name__ == "__main__":
    main()
