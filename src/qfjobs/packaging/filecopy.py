"""Copying layer files that travel as they are, with their sidecar files.

Files keep their place relative to the project's storage root, so two layers
``a/x.gpkg`` and ``b/x.gpkg`` never collide (the reference flattens them into
the package root, section 7 bug 18) and every relative path written in the
project stays valid.
"""

import logging
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

#: Extensions that belong to a data file of the same stem (shapefile parts,
#: world files, indexes, styles and metadata).
SIDECAR_SUFFIXES = frozenset(
    {
        ".shp",
        ".shx",
        ".dbf",
        ".prj",
        ".cpg",
        ".qpj",
        ".qix",
        ".sbn",
        ".sbx",
        ".fix",
        ".ain",
        ".aih",
        ".atx",
        ".mshp",
        ".xml",
        ".tfw",
        ".tifw",
        ".tiffw",
        ".wld",
        ".jgw",
        ".jpgw",
        ".pgw",
        ".pngw",
        ".gfw",
        ".aux",
        ".rrd",
        ".ovr",
        ".msk",
        ".qml",
        ".qmd",
        ".idx",
        ".dat",
        ".map",
        ".id",
        ".ind",
        ".tab",
    }
)


def sidecar_files(path: Path) -> list[Path]:
    """``path`` and the files that travel with it, sorted."""
    if path.is_dir():
        return sorted(item for item in path.rglob("*") if item.is_file())
    found = {path} if path.is_file() else set()
    folder = path.parent
    if not folder.is_dir():
        return sorted(found)
    stem = path.stem.lower()
    name = path.name.lower()
    for item in folder.iterdir():
        if not item.is_file() or item == path:
            continue
        lower = item.name.lower()
        if lower.startswith(name + "."):
            found.add(item)  # x.tif.aux.xml, x.tif.ovr, x.shp.xml
        elif item.stem.lower() == stem and item.suffix.lower() in SIDECAR_SUFFIXES:
            found.add(item)
    return sorted(found)


def copy_with_sidecars(source: Path, files_root: Path, package_dir: Path) -> list[str]:
    """Copy ``source`` and its sidecars to the same place under ``package_dir``.

    Returns the package-relative names of the copies. ``source`` must lie
    under ``files_root`` (the layer checks guarantee it).
    """
    copied = []
    for item in sidecar_files(source):
        relative = item.relative_to(files_root)
        target = package_dir / relative
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(item, target)
        copied.append(relative.as_posix())
    return copied
