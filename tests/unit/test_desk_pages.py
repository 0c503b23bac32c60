"""Pages of the responder desk: what one page shows and where the next older page starts."""

from __future__ import annotations

from adapters.http.desk_pages import DeskPage, page_of
from broadcaster.ports import StoredReply
from tests.unit.test_responder_dashboard import sms_reply


def replies(*clusters: int | None, top: int = 1000) -> list[StoredReply]:
    """Replies newest first with ids top, top-1, ...; each in the cluster given (None: none)."""
    return [
        sms_reply("report", id=top - i, external_id=f"SM{top - i}", cluster_id=cluster)
        for i, cluster in enumerate(clusters)
    ]


def ids(page: DeskPage) -> list[int]:
    return [r.id for r in page.replies]


def walk(
    store: list[StoredReply], *, read_limit: int, shown_limit: int, grouped: bool
) -> list[DeskPage]:
    """Every page from the newest back, as the desk reads them (ids below the cursor)."""
    pages, before = [], None
    while True:
        below = [r for r in store if before is None or r.id < before][:read_limit]
        page = page_of(below, read_limit=read_limit, shown_limit=shown_limit, grouped=grouped)
        pages.append(page)
        if page.older is None:
            return pages
        assert before is None or page.older < before, "each older page starts further back"
        before = page.older


def test_each_one_pages_back_without_gap_or_repeat() -> None:
    """Ungrouped, pages of 3 (reading 4) list every reply once, newest first, and the last
    page has no older link."""
    store = replies(*[None] * 8)
    pages = walk(store, read_limit=4, shown_limit=3, grouped=False)
    assert [ids(p) for p in pages] == [[1000, 999, 998], [997, 996, 995], [994, 993]]
    assert pages[-1].older is None


def test_exactly_a_page_has_no_older_link() -> None:
    """A page that holds every reply left offers no empty older page."""
    assert page_of(replies(None, None, None), read_limit=4, shown_limit=3, grouped=False) == (
        DeskPage(replies(None, None, None), None)
    )
    assert page_of([], read_limit=4, shown_limit=3, grouped=True) == DeskPage([], None)


def test_a_cluster_shows_once_per_page_and_a_huge_cluster_does_not_stall_paging() -> None:
    """Grouped, a cluster of 12 copies is one item; the next page goes on below every reply
    read, so paging ends and each reply is on some page."""
    store = replies(None, *[7] * 12, None, None, top=100)
    pages = walk(store, read_limit=5, shown_limit=2, grouped=True)
    seen = {r.id for p in pages for r in p.replies}
    # Every reply in no cluster is shown; the cluster is shown (by some copy) at least once.
    assert {r.id for r in store if r.cluster_id is None} <= seen
    assert any(r.cluster_id == 7 for p in pages for r in p.replies)
    assert all(len({r.cluster_id or r.id for r in p.replies}) == len(p.replies) for p in pages)
    assert len(pages) <= len(store)


def test_clusters_left_off_a_full_page_start_the_next() -> None:
    """With more clusters than fit, the first one left off (its newest copy) opens the next
    page."""
    store = replies(None, 5, 5, None, 6, 6, None, top=50)
    page = page_of(store, read_limit=10, shown_limit=3, grouped=True)
    assert ids(page) == [50, 49, 47]
    assert page.older == 47  # the cluster of 46 and 45 is left off: the next page reads < 47
    following = page_of(
        [r for r in store if r.id < page.older], read_limit=10, shown_limit=3, grouped=True
    )
    assert ids(following) == [46, 44]
    assert following.older is None
