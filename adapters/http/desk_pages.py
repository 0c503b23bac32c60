"""Which replies one page of the responder desk shows, and where the next older page starts.

Contract (`page_of`): given the replies read for a page (newest first, as `list_replies`
returns them) and whether older ones matched beyond them (`more`), the page shows at most
`shown_limit` items and `older` is the `before=` cursor of the next older page, or None when
nothing older matches.
- Each item is a reply; grouped, only the newest listed reply of each near-duplicate cluster
  (a reply in no cluster stands for itself), so a cluster shows once per page.
- Every reply older than the page's items is reachable through `older`, and each older page
  starts strictly further back than the one before it, so paging always ends.
- A reply read but left off the page (grouped, more clusters than fit) is on the next page:
  the cursor is just above the newest cluster left off. Copies of a cluster shown here that
  are older than that cluster may appear again, grouped, on the older page; a responder sees
  each report at least once, never none.

`read_page` reads in batches until the page fills or nothing older matches (up to a cap), so
a cluster of thousands of copies takes one item, not pages of one item each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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


def page_of(read: list[StoredReply], *, more: bool, shown_limit: int, grouped: bool) -> DeskPage:
    """One page from `read` (see the module docstring)."""
    items = newest_of_each_cluster(read) if grouped else read
    if len(items) > shown_limit:
        # The first item left off starts the next page (a cluster's newest copy included).
        return DeskPage(items[:shown_limit], items[shown_limit].id + 1)
    # Every reply read is shown or belongs to a cluster shown: go on below the oldest read.
    return DeskPage(items, read[-1].id if more and read else None)


# `(before_id, limit)` → up to `limit` replies with ids below `before_id`, newest first.
ReadReplies = Callable[[int | None, int], Awaitable[list[StoredReply]]]


async def read_page(
    read_replies: ReadReplies,
    before: int | None,
    *,
    shown_limit: int,
    grouped: bool,
    batch: int,
    batches: int,
) -> DeskPage:
    """The page below `before`: one read of `shown_limit` replies, or grouped, reads of
    `batch` until the page fills (a cluster's copies take no room), nothing older matches, or
    `batches` reads were made. Each read asks for one more than it keeps, so whether older
    replies exist is known, not guessed."""
    size = batch if grouped else shown_limit
    read: list[StoredReply] = []
    cursor = before
    more = False
    for _ in range(batches if grouped else 1):
        found = await read_replies(cursor, size + 1)
        more = len(found) > size
        read += found[:size]
        if not more or len(newest_of_each_cluster(read)) > shown_limit:
            break
        cursor = read[-1].id
    return page_of(read, more=more, shown_limit=shown_limit, grouped=grouped)
