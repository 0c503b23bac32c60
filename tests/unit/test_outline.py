"""Area outlines for the public alert page (adapters.http.outline) and the page cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.http.outline import VIEW_SIZE, area_outline
from adapters.http.pages import PageCache, Rendered, _etag_matches, when
from alerts.models import Area, Circle, Point, Polygon, ValuePair


def square(lat: float, lon: float, size: float) -> Polygon:
    corners = [(lat, lon), (lat + size, lon), (lat + size, lon + size), (lat, lon + size)]
    return Polygon(points=tuple(Point(lat=a, lon=o) for a, o in [*corners, corners[0]]))


def coordinates(points: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (p.split(",") for p in points.split())]


def test_polygon_fills_the_view_north_up_within_the_margin() -> None:
    """A polygon is scaled into the view, north at the top, inside the margin."""
    outline = area_outline([Area(description="Square", polygons=(square(51.0, -1.0, 0.1),))])
    assert outline is not None
    assert outline.view_box == f"0 0 {VIEW_SIZE:g} {VIEW_SIZE:g}"
    (shape,) = outline.shapes
    xy = coordinates(shape.points)
    assert all(0 < x < VIEW_SIZE and 0 < y < VIEW_SIZE for x, y in xy)
    south_west, north_west = xy[0], xy[1]
    assert north_west[1] < south_west[1]  # north is up
    # East-west is shortened by cos(latitude): the square of degrees is taller than wide.
    width = max(x for x, _ in xy) - min(x for x, _ in xy)
    height = max(y for _, y in xy) - min(y for _, y in xy)
    assert 0.55 < width / height < 0.7
    assert "1 outlined area" in outline.summary
    assert "Square" in outline.summary


def test_circle_stays_round_and_a_point_is_still_drawn() -> None:
    """A circle is drawn as a circle centred in the view; a radius-0 point stays visible."""
    outline = area_outline(
        [Area(description="Station", circles=(Circle(lat=51.5, lon=-0.1, radius_km=2.0),))]
    )
    assert outline is not None
    (circle,) = outline.shapes
    assert circle.kind == "circle"
    assert abs(circle.cx - VIEW_SIZE / 2) < 1
    assert abs(circle.cy - VIEW_SIZE / 2) < 1
    assert abs(circle.r - VIEW_SIZE * 0.84 / 2) < 2
    assert "radius 2 km" in outline.summary
    point = area_outline([Area(description="Here", circles=(Circle(lat=0, lon=0, radius_km=0),))])
    assert point is not None
    assert point.shapes[0].r >= 3


def test_geocode_only_areas_have_no_outline() -> None:
    """Areas given by codes alone cannot be drawn."""
    area = Area(description="County", geocodes=(ValuePair(value_name="FIPS6", value="006"),))
    assert area_outline([area]) is None


def test_page_cache_is_bounded_and_entries_lapse_at_their_expiry() -> None:
    """The cache keeps the most recently used pages and drops a page at its `until`."""
    now = datetime.now(UTC)
    cache = PageCache(size=2)
    cache.put("a", Rendered(b"a", '"a"', until=now + timedelta(seconds=1)))
    cache.put("b", Rendered(b"b", '"b"', until=None))
    assert cache.get("a", now) is not None
    cache.put("c", Rendered(b"c", '"c"', until=None))
    assert cache.get("b", now) is None  # least recently used went first
    assert cache.get("a", now + timedelta(seconds=1)) is None
    assert len(cache) == 1


def test_etag_matching_and_time_formatting() -> None:
    """If-None-Match lists, weak tags and * match; times read in UTC with an ISO attribute."""
    assert _etag_matches('"x", W/"v1-ab"', '"v1-ab"')
    assert _etag_matches("*", '"v1-ab"')
    assert not _etag_matches('"v2-ab"', '"v1-ab"')
    shown = when(datetime.fromisoformat("2026-01-04T09:05:00+01:00"))
    assert shown is not None
    assert shown.iso == "2026-01-04T08:05:00Z"
    assert shown.text == "Sun 4 Jan 2026, 08:05 UTC"
    edge = when(datetime.fromisoformat("9999-12-31T23:59:59-14:00"))  # no UTC equivalent
    assert edge is not None
    assert edge.iso == edge.text == "9999-12-31T23:59:59-14:00"
