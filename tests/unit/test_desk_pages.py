"""Pages of the responder desk: what one page shows and where the next older page starts."""

from __future__ import annotations

from adapters.http.desk_pages import DeskPage, read_page
from broadcaster.ports import StoredReply
from tests.unit.test_responder_dashboard import sms_reply


def replies(*clusters: int | None, top: int = 10_000) -> list[StoredReply]:
    """Replies newest first with ids top, top-1, ...; each in the cluster given (None: none)."""
    return [
        sms_reply("report", id=top - i, external_id=f"SM{top - i}", cluster_id=cluster)
        for i, cluster in enumerate(clusters)
    ]


def ids(page: DeskPage) -> list[int]:
    return [r.id for r in page.replies]


class FakeStore:
    """`list_replies(before_id, limit)` over a list, newest first, counting the reads."""

    def __init__(self, stored: list[StoredReply]) -> None:
        self.stored = stored
        self.reads = 0

    async def read(self, before: int | None, limit: int) -> list[StoredReply]:
        self.reads += 1
        return [r for r in self.stored if before is None or r.id < before][:limit]


async def walk(store: FakeStore, *, grouped: bool, batch: int = 5) -> list[DeskPage]:
    """Every page from the newest back, following "Older replies"."""
    pages, before = [], None
    while True:
        page = await read_page(
            store.read, before, shown_limit=3, grouped=grouped, batch=batch, batches=4
        )
        pages.append(page)
        if page.older is None:
            return pages
        assert before is None or page.older < before, "each older page starts further back"
        before = page.older


async def test_each_one_pages_back_without_gap_or_repeat() -> None:
    """Ungrouped, pages of 3 list every reply once, newest first; the last has no older
    link, and a page holding exactly the rest offers no empty older page."""
    pages = await walk(FakeStore(replies(*[None] * 9)), grouped=False)
    assert [ids(p) for p in pages] == [
        [10_000, 9_999, 9_998],
        [9_997, 9_996, 9_995],
        [9_994, 9_993, 9_992],
    ]
    assert pages[-1].older is None


async def test_grouped_pages_show_each_cluster_once_and_every_report_somewhere() -> None:
    """Grouped, clusters and single reports interleaved over several pages: each page shows
    a cluster once, every single report is on exactly one page, every cluster on some page."""
    clusters: list[int | None] = [1, None, 2, 1, None, 3, 2, None, 1, None, 4, None, 3]
    store = FakeStore(replies(*clusters))
    pages = await walk(store, grouped=True)
    shown = [r for p in pages for r in p.replies]
    singles = [r.id for r in shown if r.cluster_id is None]
    assert sorted(singles) == sorted(r.id for r in store.stored if r.cluster_id is None)
    assert len(singles) == len(set(singles))
    assert {r.cluster_id for r in shown} >= {1, 2, 3, 4}
    for page in pages:
        keys = [r.cluster_id or -r.id for r in page.replies]
        assert len(keys) == len(set(keys))


async def test_a_huge_cluster_is_one_item_and_the_page_reads_past_it() -> None:
    """A cluster of 12 copies above 3 single reports: the first page shows the cluster once
    and the singles after it (it reads on in batches), not a page of one item."""
    store = FakeStore(replies(*[7] * 12, None, None, None))
    page = await read_page(store.read, None, shown_limit=3, grouped=True, batch=5, batches=4)
    assert [r.cluster_id for r in page.replies] == [7, None, None]
    assert page.older == 9_987  # the third single (9_986) opens the next page
    assert store.reads == 3
    last = await read_page(store.read, page.older, shown_limit=3, grouped=True, batch=5, batches=4)
    assert (ids(last), last.older) == ([9_986], None)


async def test_reads_stop_at_the_cap_and_an_exact_fit_offers_no_empty_page() -> None:
    """A cluster longer than every batch allowed stops reading at the cap and pages on below
    what was read; a grouped page that read everything offers no older page."""
    store = FakeStore(replies(*[7] * 40, None))
    page = await read_page(store.read, None, shown_limit=3, grouped=True, batch=5, batches=4)
    assert (store.reads, [r.cluster_id for r in page.replies], page.older) == (4, [7], 9_981)
    exact = FakeStore(replies(*[7] * 5))
    page = await read_page(exact.read, None, shown_limit=3, grouped=True, batch=5, batches=4)
    assert (len(page.replies), page.older) == (1, None)
