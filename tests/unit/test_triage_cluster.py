"""Near-duplicate clustering of replies."""

from __future__ import annotations

import pytest

from broadcaster.triage import Clusterer, extract

ORIGINAL = "Gunman seen running down Wellington Road towards the station, police are on scene now"


def test_retweet_joins_the_original() -> None:
    """'RT @x: ...' of a post lands in the post's cluster and the count grows."""
    clusters = Clusterer()
    first = clusters.assign(ORIGINAL)
    second = clusters.assign("RT @someone: " + ORIGINAL)
    assert first.new
    assert not second.new
    assert second.cluster_id == first.cluster_id
    assert second.count == 2


def test_copy_paste_with_small_changes_joins() -> None:
    """Case, punctuation, a link and a truncated tail do not make a new cluster."""
    clusters = Clusterer()
    first = clusters.assign(ORIGINAL)
    edited = clusters.assign(
        "gunman seen running down Wellington Road towards the station police are on… http://t.co/x"
    )
    assert edited.cluster_id == first.cluster_id


def test_different_reports_stay_apart() -> None:
    """Two unrelated posts get two clusters."""
    clusters = Clusterer()
    a = clusters.assign(ORIGINAL)
    b = clusters.assign("Flood water rising fast on the A58 near Bolton, two cars stuck")
    assert a.cluster_id != b.cluster_id
    assert b.new


def test_same_plate_joins() -> None:
    """Different wording about the same plate is one cluster."""
    clusters = Clusterer()
    one = "Silver Ford Focus AB12 CDE speeding away from the bank"
    two = "just saw AB12 CDE parked behind Tesco, driver wearing a red cap"
    a = clusters.assign(one, extract(one))
    b = clusters.assign(two, extract(two))
    assert b.cluster_id == a.cluster_id
    assert b.count == 2


def test_memory_is_bounded() -> None:
    """Past capacity the oldest cluster is forgotten, and its text starts a new one."""
    clusters = Clusterer(capacity=3)
    first = clusters.assign("post number zero about the fire downtown")
    for i in range(1, 10):
        clusters.assign(f"completely different story {i} about item {i * 7} elsewhere today")
    assert len(clusters) == 3
    again = clusters.assign("post number zero about the fire downtown")
    assert again.new
    assert again.cluster_id != first.cluster_id


def test_bad_settings_are_refused() -> None:
    """A zero capacity or a similarity outside (0, 1] is a ValueError."""
    with pytest.raises(ValueError, match="capacity"):
        Clusterer(capacity=0)
    with pytest.raises(ValueError, match="similarity"):
        Clusterer(similarity=1.5)
