"""Geo-targeting: which subscribers lie inside an alert's areas. Pure computation, no I/O.

Contract:
- `GeoIndex(lats, lons, area_codes)` indexes subscribers by position i (None for an unknown
  position or area code). Building it for 1,000,000 subscribers takes about a second; a
  `select` over it well under one (measured in bench/, tested at 10,000 here).
- `select(areas)` returns the sorted positions of subscribers inside ANY of the areas:
  inside (or on the edge of) a polygon; within `radius_km` of a circle's centre (great-circle
  distance, so a 5 km circle is 5 km at any latitude); or whose area code equals the value of
  any of the area's geocodes. Each subscriber appears once however many areas contain them.
- Coordinates are WGS 84 degrees, CAP order (lat, lon); shapely works in (x=lon, y=lat).
  Polygons are taken as drawn in degrees, which is what CAP means; no area crosses the
  antimeridian in practice, and one that does is treated as drawn.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import shapely
from shapely.strtree import STRtree

from alerts.models import Area, Circle

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius
_KM_PER_DEGREE_LAT = math.pi * EARTH_RADIUS_KM / 180.0

IndexArray = np.ndarray[Any, np.dtype[np.int64]]


class GeoIndex:
    """Subscribers' positions and area codes, indexed for area queries."""

    def __init__(
        self,
        lats: Sequence[float | None],
        lons: Sequence[float | None],
        area_codes: Sequence[str | None],
    ) -> None:
        if not len(lats) == len(lons) == len(area_codes):
            raise ValueError("lats, lons and area_codes must have one entry per subscriber")
        located = [
            i for i, (lat, lon) in enumerate(zip(lats, lons, strict=True)) if _known(lat, lon)
        ]
        self._positions: IndexArray = np.asarray(located, dtype=np.int64)
        self._lats = np.asarray([lats[i] for i in located], dtype=np.float64)
        self._lons = np.asarray([lons[i] for i in located], dtype=np.float64)
        self._tree = STRtree(shapely.points(self._lons, self._lats))
        self._by_code: dict[str, list[int]] = {}
        for position, code in enumerate(area_codes):
            if code:
                self._by_code.setdefault(code.strip().upper(), []).append(position)
        self.size = len(lats)

    def select(self, areas: Iterable[Area]) -> IndexArray:
        """Sorted positions of the subscribers inside any of `areas` (see module contract)."""
        found: list[IndexArray] = []
        for area in areas:
            for polygon in area.polygons:
                ring = [(p.lon, p.lat) for p in polygon.points]
                hits = self._tree.query(shapely.Polygon(ring), predicate="intersects")
                found.append(self._positions[hits])
            for circle in area.circles:
                found.append(self._in_circle(circle))
            for geocode in area.geocodes:
                codes = self._by_code.get(geocode.value.strip().upper(), [])
                found.append(np.asarray(codes, dtype=np.int64))
        if not found:
            return np.empty(0, dtype=np.int64)
        return np.unique(np.concatenate(found))

    def _in_circle(self, circle: Circle) -> IndexArray:
        # A box query narrows the candidates; the exact great-circle test decides.
        dlat = circle.radius_km / _KM_PER_DEGREE_LAT
        cos_lat = max(math.cos(math.radians(circle.lat)), 1e-6)
        dlon = min(180.0, dlat / cos_lat)
        box = shapely.box(
            circle.lon - dlon, circle.lat - dlat, circle.lon + dlon, circle.lat + dlat
        )
        candidates = self._tree.query(box)
        if candidates.size == 0:
            return np.empty(0, dtype=np.int64)
        distance = haversine_km(
            circle.lat, circle.lon, self._lats[candidates], self._lons[candidates]
        )
        inside = candidates[distance <= circle.radius_km]
        result: IndexArray = self._positions[inside]
        return result


def haversine_km(lat: float, lon: float, lats: Any, lons: Any) -> Any:
    """Great-circle distance in km from (lat, lon) to each of (lats, lons) (numpy arrays)."""
    phi1 = math.radians(lat)
    phi2 = np.radians(lats)
    dphi = phi2 - phi1
    dlmb = np.radians(lons) - math.radians(lon)
    a = np.sin(dphi / 2) ** 2 + math.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _known(lat: float | None, lon: float | None) -> bool:
    return lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180
