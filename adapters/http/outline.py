"""An alert's areas as a simple SVG outline: no tiles, no third party, readable on a phone.

Contract:
- `area_outline(areas)` projects polygons and circles equirectangularly around the middle of
  their bounding box (x = longitude * cos(mid-latitude), y = -latitude), so shapes keep their
  proportions near the alert, and scales them into a `VIEW_SIZE` box with a margin.
- A circle stays a circle: its radius in kilometres becomes degrees of latitude, which is the
  unit of both axes after projection.
- Areas given only by geocodes have no shape: None when nothing can be drawn.
- `summary` is the text alternative: what is drawn and where, in words.
- Output is numbers and words only; the template escapes and places them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from alerts.models import Area

VIEW_SIZE = 400.0
MARGIN = 0.08  # of the view, on every side
KM_PER_DEGREE = 111.32
# A lone point (radius 0) still gets a box this many degrees wide, so it is drawn mid-view.
MIN_SPAN_DEGREES = 0.01


@dataclass(frozen=True, slots=True)
class Shape:
    kind: str  # "polygon" or "circle"
    label: str  # the area's description
    points: str = ""  # polygon: "x,y x,y ..."
    cx: float = 0.0
    cy: float = 0.0
    r: float = 0.0


@dataclass(frozen=True, slots=True)
class Outline:
    view_box: str
    shapes: tuple[Shape, ...]
    summary: str


def _lat_lon_text(lat: float, lon: float) -> str:
    ns = "N" if lat >= 0 else "S"
    ew = "E" if lon >= 0 else "W"
    return f"{abs(lat):.3f}° {ns}, {abs(lon):.3f}° {ew}"


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def area_outline(areas: Sequence[Area]) -> Outline | None:
    """The drawable shapes of `areas`, projected and scaled; None when there are none."""
    lats: list[float] = []
    lons: list[float] = []
    for area in areas:
        for polygon in area.polygons:
            lats.extend(p.lat for p in polygon.points)
            lons.extend(p.lon for p in polygon.points)
        for circle in area.circles:
            dlat = circle.radius_km / KM_PER_DEGREE
            cos_lat = max(math.cos(math.radians(circle.lat)), 0.01)
            lats.extend((circle.lat - dlat, circle.lat + dlat))
            lons.extend((circle.lon - dlat / cos_lat, circle.lon + dlat / cos_lat))
    if not lats:
        return None
    mid_lat = (min(lats) + max(lats)) / 2
    x_scale = max(math.cos(math.radians(mid_lat)), 0.01)
    min_x, max_x = min(lons) * x_scale, max(lons) * x_scale
    min_y, max_y = -max(lats), -min(lats)
    span = max(max_x - min_x, max_y - min_y, MIN_SPAN_DEGREES)
    inner = VIEW_SIZE * (1 - 2 * MARGIN)
    factor = inner / span
    # Centre the drawing in the square view.
    offset_x = VIEW_SIZE / 2 - (min_x + max_x) / 2 * factor
    offset_y = VIEW_SIZE / 2 - (min_y + max_y) / 2 * factor

    def project(lat: float, lon: float) -> tuple[float, float]:
        return lon * x_scale * factor + offset_x, -lat * factor + offset_y

    shapes: list[Shape] = []
    for area in areas:
        for polygon in area.polygons:
            xy = (project(p.lat, p.lon) for p in polygon.points)
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
            shapes.append(Shape(kind="polygon", label=area.description, points=points))
        for circle in area.circles:
            cx, cy = project(circle.lat, circle.lon)
            r = max(circle.radius_km / KM_PER_DEGREE * factor, 3.0)
            shapes.append(
                Shape(
                    kind="circle",
                    label=area.description,
                    cx=round(cx, 1),
                    cy=round(cy, 1),
                    r=round(r, 1),
                )
            )
    return Outline(
        view_box=f"0 0 {VIEW_SIZE:g} {VIEW_SIZE:g}",
        shapes=tuple(shapes),
        summary=_summary(areas, mid_lat, (min(lons) + max(lons)) / 2),
    )


def _summary(areas: Sequence[Area], mid_lat: float, mid_lon: float) -> str:
    polygons = sum(len(a.polygons) for a in areas)
    circles = [c for a in areas for c in a.circles]
    parts = []
    if polygons:
        parts.append(_count(polygons, "outlined area"))
    if circles:
        radii = ", ".join(f"{c.radius_km:g} km" for c in circles)
        parts.append(f"{_count(len(circles), 'circle')} (radius {radii})")
    names = "; ".join(a.description for a in areas)
    return f"{' and '.join(parts)} around {_lat_lon_text(mid_lat, mid_lon)}: {names}."
