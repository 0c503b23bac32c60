"""Replies through the service as it runs in production: the shipped classifier and
clusterer, not the keyword stand-in the other listening tests use."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from adapters.server import load_clusterer, load_triage, running_service
from broadcaster.config import load_settings


async def test_a_web_tip_is_triaged_by_the_shipped_model(tmp_path: Path) -> None:
    """A hazard tip with a plate is stored as hazard with its entities; an unrelated one
    gets no category; a copy of the first joins its cluster."""
    settings = load_settings(
        None,
        database={"url": f"sqlite:///{tmp_path / 'b.db'}"},
        http={"port": 0, "tips_per_minute": 60, "tips_burst": 50},
    )
    tips = [
        "Explosion and thick smoke at the chemical plant on Wellington Road, people injured,"
        " a white van AB12 CDE drove off fast",
        "Thoughts and prayers to everyone, stay strong",
        "RT Explosion and thick smoke at the chemical plant on Wellington Road, people injured,"
        " a white van AB12 CDE drove off fast",
    ]
    async with (
        running_service(settings) as (service, url),
        aiohttp.ClientSession() as http,
    ):
        ids = []
        for text in tips:
            async with http.post(f"{url}/v1/replies", json={"text": text}) as response:
                assert response.status == 202, await response.text()
                ids.append((await response.json())["id"])
        hazard, prayer, copy = [await service.store.get_reply(i) for i in ids]
    assert hazard is not None
    assert prayer is not None
    assert copy is not None
    assert "hazard" in hazard.categories
    assert hazard.score is not None
    assert hazard.score > 0.5
    assert "AB12 CDE" in str(hazard.entities)
    assert prayer.categories == ()
    assert copy.cluster_id is not None
    assert copy.cluster_id == hazard.cluster_id


def test_the_shipped_triage_and_clusterer_load() -> None:
    """serve wires the packaged model and a clusterer (no stand-in, no silent fallback)."""
    triage = load_triage()
    result = triage("Gunman seen near the station, stay indoors")
    assert "hazard" in result.categories
    assert load_clusterer() is not None
