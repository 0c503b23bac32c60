"""Near-duplicate clusters of replies as stored: the clusterer's in-memory ids mapped to the id
of each cluster's first reply, which is what `replies.cluster_id` holds.

Contract:
- A reply alone in its cluster keeps `cluster_id` NULL (a count of 1). When a second reply
  joins, the first one's `cluster_id` is set to its own id and the newcomer is stored with
  that id, so "how many share its cluster" is a GROUP BY on `cluster_id`.
- The clusterer (`broadcaster.triage.Clusterer`, when installed) is in memory: after a
  restart, or once a cluster is forgotten, a repeat of an older report starts a new cluster.
  A clusterer that raises leaves the reply unclustered (logged): it must not lose a report.
- Ids are those of stored replies, so they stay unique across restarts and processes.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from broadcaster.ports import Store, StoredReply
from broadcaster.triage.entities import Entities

log = logging.getLogger(__name__)


class Assignment(Protocol):
    @property
    def cluster_id(self) -> str: ...

    @property
    def new(self) -> bool: ...


class Clusterer(Protocol):
    """`broadcaster.triage.Clusterer`: `assign(text, entities)` gives a cluster per post."""

    def assign(self, text: str, entities: Entities | None = None, /) -> Assignment: ...


@dataclass(slots=True)
class _Leader:
    reply_id: int
    marked: bool = False


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a reply about to be stored goes: `key` is its new cluster (to remember once the
    reply has an id), `cluster_id` the stored cluster it joins."""

    key: str | None = None
    cluster_id: int | None = None


class StoredClusters:
    def __init__(self, clusterer: Clusterer, store: Store, capacity: int = 20_000) -> None:
        self._clusterer = clusterer
        self._store = store
        self._capacity = capacity
        self._leaders: OrderedDict[str, _Leader] = OrderedDict()

    async def place(self, text: str, entities: object) -> Placement:
        """Assign `text`; when it joins a known cluster, mark the cluster's first reply."""
        try:
            usable = entities if isinstance(entities, Entities) else None
            assignment = self._clusterer.assign(text, usable)
        except Exception:
            log.exception("clustering failed; the reply is stored unclustered")
            return Placement()
        if assignment.new:
            return Placement(key=assignment.cluster_id)
        leader = self._leaders.get(assignment.cluster_id)
        if leader is None:  # forgotten, or its first reply is still being stored
            return Placement()
        self._leaders.move_to_end(assignment.cluster_id)
        if not leader.marked:
            await self._store.set_reply_cluster(leader.reply_id, leader.reply_id)
            leader.marked = True
        return Placement(cluster_id=leader.reply_id)

    def stored(self, placement: Placement, reply: StoredReply) -> None:
        """Remember the first reply of a new cluster."""
        if placement.key is None:
            return
        self._leaders[placement.key] = _Leader(reply.id)
        while len(self._leaders) > self._capacity:
            self._leaders.popitem(last=False)
