"""Packaging every project of the shared corpus (QFJOBS_CORPUS_DIR).

Each project must package (the deliberately broken XML must fail with
InvalidProjectFileError), and the package must read back: every layer valid
in the original is valid in the package with the same feature count,
geometry type, CRS and fields (see :func:`tests.packaging.readback.
check_package`). The corpus folders themselves must stay untouched.
"""

import os
from pathlib import Path

import pytest

from qfjobs.errors import InvalidProjectFileError
from tests.packaging.readback import check_package, package_folder, packaged_root

pytestmark = pytest.mark.corpus

BROKEN = {"broken.qgs"}


def project_files() -> list[Path]:
    value = os.environ.get("QFJOBS_CORPUS_DIR")
    if not value:
        return []
    return sorted(
        p
        for p in Path(value).rglob("*")
        if p.is_file() and p.suffix.lower() in (".qgs", ".qgz")
    )


def test_corpus_is_configured() -> None:
    value = os.environ.get("QFJOBS_CORPUS_DIR")
    if not value:
        pytest.skip("QFJOBS_CORPUS_DIR is not set: the corpus packaging tests skip")
    assert project_files(), f"no .qgs/.qgz under {value}"


@pytest.mark.parametrize(
    "project", project_files(), ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_corpus_project_packages(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGSERVICEFILE", raising=False)
    before = {
        str(p): p.stat().st_size for p in project.parent.rglob("*") if p.is_file()
    }
    out = tmp_path / "package"
    if project.name in BROKEN:
        with pytest.raises(InvalidProjectFileError):
            package_folder(project.parent, project.name, out)
        return

    original, build, packaged = package_folder(project.parent, project.name, out)
    check_package(original, build, packaged, out)
    root = packaged_root(out, build)
    assert root.find("mapcanvas") is not None
    outcomes = {item["outcome"] for item in build.layers}
    assert outcomes <= {"packaged_offline", "copied", "kept_unchanged", "removed"}
    for item in build.layers:
        assert item["reason"]
        if item["outcome"] == "packaged_offline":
            assert item["skipped"] == [], item
    after = {str(p): p.stat().st_size for p in project.parent.rglob("*") if p.is_file()}
    assert after == before
