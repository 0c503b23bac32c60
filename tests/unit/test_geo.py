"""Geo-targeting: polygons, circles and geocodes select exactly the subscribers inside."""

from __future__ import annotations

import math
import random

import shapely

from alerts.geo import GeoIndex, haversine_km
from alerts.models import Area, Circle, Point, Polygon, ValuePair

# A box around central Manchester, and a polygon over roughly its western 30 %.
SOUTH, NORTH, WEST, EAST = 53.40, 53.55, -2.40, -2.10
RING = [(53.40, -2.40), (53.55, -2.40), (53.55, -2.31), (53.40, -2.31), (53.40, -2.40)]


def polygon(ring: list[tuple[float, float]]) -> Polygon:
    return Polygon(points=tuple(Point(lat=lat, lon=lon) for lat, lon in ring))


def subscribers(count: int, seed: int = 7) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    lats = [SOUTH + rng.random() * (NORTH - SOUTH) for _ in range(count)]
    lons = [WEST + rng.random() * (EAST - WEST) for _ in range(count)]
    return lats, lons


def test_polygon_selects_exactly_those_inside() -> None:
    """10,000 subscribers, a polygon over ~30 %: exactly the covered ones, each once."""
    lats, lons = subscribers(10_000)
    index = GeoIndex(lats, lons, [None] * 10_000)
    chosen = index.select([Area(description="west", polygons=(polygon(RING),))])
    shape = shapely.Polygon([(lon, lat) for lat, lon in RING])
    expected = [i for i in range(10_000) if shape.intersects(shapely.Point(lons[i], lats[i]))]
    assert chosen.tolist() == expected
    assert 0.27 < len(expected) / 10_000 < 0.33


def test_circle_uses_great_circle_distance() -> None:
    """A circle holds the subscribers within its radius in km, at this latitude."""
    lats, lons = subscribers(5_000, seed=3)
    index = GeoIndex(lats, lons, [None] * 5_000)
    circle = Circle(lat=53.48, lon=-2.24, radius_km=4.0)
    chosen = index.select([Area(description="centre", circles=(circle,))])
    expected = [
        i
        for i in range(5_000)
        if haversine_km(circle.lat, circle.lon, lats[i], lons[i]) <= circle.radius_km
    ]
    assert chosen.tolist() == expected
    assert expected  # the test means something


def test_haversine_matches_a_known_distance() -> None:
    """One degree of latitude is about 111.2 km."""
    assert math.isclose(float(haversine_km(0.0, 0.0, 1.0, 0.0)), 111.19, abs_tol=0.01)


def test_geocodes_match_area_codes_and_areas_union_without_repeats() -> None:
    """Geocode values match area codes (case-insensitive); overlaps count once."""
    lats = [53.45, 53.50, None, 10.0]
    lons = [-2.35, -2.20, None, 10.0]
    codes = ["M1", "m1", "M2", None]
    index = GeoIndex(lats, lons, codes)
    areas = [
        Area(description="m1", geocodes=(ValuePair(value_name="postcode", value="M1"),)),
        Area(description="west", polygons=(polygon(RING),)),
        Area(description="m2", geocodes=(ValuePair(value_name="postcode", value="M2 "),)),
    ]
    assert index.select(areas).tolist() == [0, 1, 2]


def test_no_areas_and_unknown_positions_select_nobody() -> None:
    """An alert without areas selects nobody; subscribers without a position are skipped."""
    index = GeoIndex([None, 53.45], [None, -2.35], [None, None])
    assert index.select([]).tolist() == []
    assert index.select([Area(description="west", polygons=(polygon(RING),))]).tolist() == [1]
