"""The optional area of interest that clips spatial offline layers.

When the project entry ``qfieldsync/offlineCopyOnlyAoi`` is true, the
bounding box of ``qfieldsync/areaOfInterest`` (WKT in
``qfieldsync/areaOfInterestCrs``) is transformed to each layer's CRS and
only features whose geometry meets that box are packaged (reference 3.5;
the reference's default packager ignores it, section 7 bug 5, fixed here).
Geometry-less tables are never clipped.
"""

import re
from dataclasses import dataclass

from lxml import etree
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError

from qfjobs.errors import PackagingError
from qfjobs.geodata.sources import BBox

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_TRUE = {"true", "1", "yes"}


@dataclass(frozen=True)
class AreaOfInterest:
    bbox: BBox
    crs: str

    def bbox_in(self, layer_crs: str) -> BBox:
        """The box in ``layer_crs``; raises PackagingError when not possible."""
        if not layer_crs or layer_crs == self.crs:
            return self.bbox
        try:
            transformer = Transformer.from_crs(
                CRS.from_user_input(self.crs),
                CRS.from_user_input(layer_crs),
                always_xy=True,
            )
            box = transformer.transform_bounds(*self.bbox)
        except (CRSError, ProjError) as exc:
            raise PackagingError(
                f"Cannot transform the area of interest to {layer_crs}: {exc}"
            ) from exc
        return (box[0], box[1], box[2], box[3])


def read_area_of_interest(root: etree._Element) -> AreaOfInterest | None:
    """The area to clip to, or None when the project does not ask for it."""
    scope = "properties/qfieldsync"
    only_aoi = (root.findtext(f"{scope}/offlineCopyOnlyAoi") or "").strip().lower()
    if only_aoi not in _TRUE:
        return None
    wkt = (root.findtext(f"{scope}/areaOfInterest") or "").strip()
    crs = (root.findtext(f"{scope}/areaOfInterestCrs") or "").strip()
    numbers = [float(text) for text in _NUMBER.findall(wkt.split("(", 1)[-1])]
    if (
        not wkt.upper().lstrip().startswith(("POLYGON", "MULTIPOLYGON"))
        or len(numbers) < 6
    ):
        raise PackagingError(
            "offlineCopyOnlyAoi is set but the area of interest is not a polygon"
        )
    if not crs:
        raise PackagingError(
            "offlineCopyOnlyAoi is set but the area of interest has no CRS"
        )
    xs, ys = _coordinates(wkt, numbers)
    return AreaOfInterest((min(xs), min(ys), max(xs), max(ys)), crs)


def _coordinates(wkt: str, numbers: list[float]) -> tuple[list[float], list[float]]:
    """X and Y of every vertex; Z and M values of 3- and 4-D WKT are skipped."""
    head = wkt.split("(", 1)[0].upper()
    dimensions = (
        2 + ("Z" in head.split("POLYGON")[-1]) + ("M" in head.split("POLYGON")[-1])
    )
    xs = numbers[0::dimensions]
    ys = numbers[1::dimensions]
    return xs, ys
