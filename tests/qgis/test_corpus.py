"""inspect_project over every project of the shared corpus (QFJOBS_CORPUS_DIR).

Checks that each project either opens (every layer classified, JSON clean of
secrets, files untouched) or, for the deliberately broken one, fails with
InvalidProjectFileError; plus the layer counts and validity the corpus
MANIFEST documents.
"""

import json
import os
import re
from pathlib import Path

import pytest

from qfjobs.errors import InvalidProjectFileError
from qfjobs.qgis.inspect import inspect_project

pytestmark = pytest.mark.corpus

ERROR_CODES = {
    "no_error",
    "invalid_layer",
    "invalid_dataprovider",
    "localized_dataprovider",
    "missing_dataprovider",
}
BROKEN = {"broken.qgs"}
#: project file name -> (layer count, number of invalid layers), from MANIFEST.md
EXPECTED = {
    "project.qgs@qfieldcloud-delta": (8, 0),
    "project3.qgs@qfieldcloud-delta": (1, 0),
    "project_broken_datasource.qgs@qfieldcloud-delta_broken_datasource": (2, 1),
    "project_pgservice.qgs@qfieldcloud-delta_pgservice": (2, 2),
    "self_contained.qgs@qfieldcloud-self_contained_memory": (2, 0),
    "simple_bumblebees_correct_localized.qgs@qfieldcloud-localized": (3, 2),
    "simple_bumblebees_wrong_localized.qgs@qfieldcloud-localized": (4, 3),
    "simple_bee_farming.qgs@qfieldcloud-simple_bee_farming": (3, 0),
    "project.qgs@libqfieldsync-assets_project": (4, 2),
    "project.qgs@libqfieldsync-geometryless_project": (3, 0),
    "test_bees.qgz@QField-test_bees": (8, 0),
    "advanced_bee_farming.qgs@QField-advanced_bee_farming": (8, 0),
    "john_snow.qgs@training-john_snow_2_16": (3, 0),
}
UNREDACTED = re.compile(r"(?i)password\s*=\s*(?!['\"]?\*\*\*)['\"]?\w")


def corpus_dir() -> Path:
    value = os.environ.get("QFJOBS_CORPUS_DIR")
    if not value:
        pytest.skip("QFJOBS_CORPUS_DIR not set")
    return Path(value)


def project_files() -> list[Path]:
    value = os.environ.get("QFJOBS_CORPUS_DIR")
    if not value:
        return []
    root = Path(value)
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in (".qgs", ".qgz")
    )


def snapshot(folder: Path) -> dict[str, int]:
    return {
        str(path.relative_to(folder)): path.stat().st_size
        for path in folder.rglob("*")
        if path.is_file()
    }


def test_corpus_is_configured() -> None:
    root = corpus_dir()

    assert project_files(), f"no .qgs/.qgz found under {root}"


@pytest.mark.parametrize(
    "project", project_files(), ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_corpus_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGSERVICEFILE", raising=False)
    before = snapshot(project.parent)

    if project.name in BROKEN:
        with pytest.raises(InvalidProjectFileError, match=r"line \d+, column \d+"):
            inspect_project(project)
        return

    report = inspect_project(project)
    text = json.dumps(report.details) + "\n".join(report.log_lines)
    records = list(report.details["layers_by_id"].values())

    assert snapshot(project.parent) == before
    assert records, "no layers"
    for record in records:
        assert record["error_code"] in ERROR_CODES, record
        assert record["is_valid"] is (record["error_code"] == "no_error"), record
        assert isinstance(record["type_name"], str) and record["type_name"]
        if record["type_name"] == "Vector":
            assert isinstance(record["wkb_type"], int), record
        else:
            assert record["wkb_type"] is None, record
    assert UNREDACTED.search(text) is None
    assert "Bhooo" not in text

    key = f"{project.name}@{project.parent.name}"
    if key in EXPECTED:
        count, invalid = EXPECTED[key]
        assert (len(records), report.invalid_count) == (count, invalid), (
            report.log_lines
        )
