"""Which replies one page of the responder desk shows, and where the next older page starts.

Contract (`page_of`): given the replies read for a page (newest first, as `list_replies`
returns them, at most `read_limit` of them), the page shows at most `shown_limit` items and
`older` is the `before=` cursor of the next older page, or None when nothing older matches.
- Each item is a reply; grouped, only the newest listed reply of each near-duplicate cluster
  (a reply in no cluster stands for itself), so a cluster shows once per page.
- Every reply older than the page's items is reachable through `older`, and each older page
  starts strictly further back than the one before it, so paging always ends (a cluster of
  thousands of copies is one item, then the page after it).
- A reply read but left off the page (grouped, more clusters than fit) is on the next page:
  the cursor is just above the newest cluster left off. Copies of a cluster shown here that
  are older than that cluster may appear again, grouped, on the older page; a responder sees
  each report at least once, never none.
"""

from __future__ import annotations

from dataclasses import dataclass

from broadcaster.ports import StoredReply


def newest_of_each_cluster(replies: list[StoredReply]) -> list[StoredReply]:
    """The first (newest, as listed) reply of each cluster, in list order; a reply in no
    cluster stands for itself."""
    seen: set[str] = set()
    kept = []
    for reply in replies:
        key = f"c:{reply.cluster_id}" if reply.cluster_id else f"r:{reply.id}"
        if key not in seen:
            seen.add(key)
            kept.append(reply)
    return kept


@dataclass(frozen=True)
class DeskPage:
    """The replies a page shows, newest first, and the cursor of the next older page."""

    replies: list[StoredReply]
    older: int | None


def page_of(
    read: list[StoredReply], *, read_limit: int, shown_limit: int, grouped: bool
) -> DeskPage:
    """One page from `read` (see the module docstring)."""
    if not grouped:
        shown = read[:shown_limit]
        more = len(read) >= read_limit or len(read) > shown_limit
        return DeskPage(shown, shown[-1].id if more and shown else None)
    kept = newest_of_each_cluster(read)
    if len(kept) > shown_limit:
        # The first cluster left off starts the next page (its newest copy included).
        return DeskPage(kept[:shown_limit], kept[shown_limit].id + 1)
    # Every reply read belongs to a cluster shown here: go on below the oldest one read.
    return DeskPage(kept, read[-1].id if len(read) >= read_limit else None)
