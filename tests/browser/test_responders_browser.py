"""The responder desk in a real browser (Chromium): log in with a token, a new tip appears
live without a reload, acknowledge and answer work (with JavaScript off too), and axe-core
finds no serious violations on the login page or the desk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from adapters.simulators.twilio import TwilioSimulator
from broadcaster.ports import NewReply, ReplyState, Role
from tests.browser.test_public_pages_browser import axe_violations, describe
from tests.conftest import RunningService
from tests.integration.test_reply_store import reply
from tests.support.broker import free_port
from tests.support.public_web import post_alert
from tests.support.replies import sms_channel, start_listening


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[RunningService]:
    """The whole service with the keyword triage and a short SSE keep-alive."""
    async for running in start_listening(
        tmp_path, http={"port": 0, "sse_keepalive_seconds": 1.0, "tips_burst": 50}
    ):
        yield running


async def tip(site: RunningService, text: str, **fields: object) -> int:
    async with site.http.post(f"{site.url}/v1/replies", json={"text": text, **fields}) as r:
        assert r.status == 202
        reply_id: int = (await r.json())["id"]
        return reply_id


async def logged_in(context: BrowserContext, site: RunningService) -> Page:
    page = await context.new_page()
    await page.goto(f"{site.url}/responders")
    await page.get_by_label("Responder token").fill(site.tokens[Role.RESPONDER])
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator("h1")).to_have_text("Replies from the public")
    return page


async def test_new_tip_appears_live_and_acknowledge_works(
    browser: Browser, desk: RunningService
) -> None:
    """After logging in, a hazard tip POSTed to /v1/replies shows within 2 s without a
    reload, with its entities marked; Acknowledge records who and when."""
    context = await browser.new_context()
    page = await logged_in(context, desk)
    await expect(page.locator("html")).to_have_attribute("data-live", "connected")
    await expect(page.locator("#reply-list")).to_contain_text("No replies match")
    await page.evaluate("window.notReloaded = true")
    reply_id = await tip(desk, "Thick smoke and fire at the old mill on Canal St")
    article = page.locator(f"#reply-{reply_id}")
    await expect(article).to_contain_text("Thick smoke and fire", timeout=2000)
    await expect(article.locator(".badge.cat-hazard")).to_have_text("Hazard")
    await expect(page.locator("#live-status")).to_contain_text(f"New reply {reply_id}")
    assert await page.evaluate("window.notReloaded === true")

    await article.get_by_role("button", name="Acknowledge").click()
    await expect(page.locator(".notice")).to_have_text(f"Reply {reply_id} acknowledged.")
    article = page.locator(f"#reply-{reply_id}")
    await expect(article.locator(".handled")).to_contain_text("by test-responder at")
    stored = await desk.service.store.get_reply(reply_id)
    assert stored is not None
    assert (stored.state, stored.state_by) == (ReplyState.ACKNOWLEDGED, "test-responder")
    await context.close()


async def test_desk_works_without_javascript(browser: Browser, desk: RunningService) -> None:
    """With JavaScript off: log in, filter by category, dismiss with a note (audited), see
    that a web tip cannot be answered, log out."""
    hazard = await tip(desk, "Flood water over the road at the ford")
    await tip(desk, "Man with a knife outside the bank")
    context = await browser.new_context(java_script_enabled=False)
    page = await logged_in(context, desk)
    await page.get_by_label("Category").select_option("hazard")
    await page.get_by_role("button", name="Show").click()
    await expect(page.locator(".reply")).to_have_count(1)
    article = page.locator(f"#reply-{hazard}")
    await expect(article).to_contain_text("No return channel")
    await article.get_by_label("Note (optional)").fill("duplicate of a 999 call")
    await article.get_by_role("button", name="Dismiss").click()
    await expect(page.locator(".notice")).to_have_text(f"Reply {hazard} dismissed.")
    await expect(page).to_have_url(
        f"{desk.url}/responders?category=hazard&notice=dismissed&reply={hazard}#reply-{hazard}"
    )
    rows = await desk.service.store.audit_rows(0, 100)
    [row] = [r for r in rows if r.action.startswith("reply.")]
    assert row.detail["note"] == "duplicate of a 999 call"
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_label("Responder token")).to_be_visible()
    await context.close()


async def test_other_roles_cannot_log_in(browser: Browser, desk: RunningService) -> None:
    """An issuer's token is refused with a message, and no session is made."""
    page = await browser.new_page()
    await page.goto(f"{desk.url}/responders")
    await page.get_by_label("Responder token").fill(desk.tokens[Role.ISSUER])
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator(".form-errors")).to_contain_text("needs the responder role")
    async with desk.http.get(f"{desk.url}/responders?fragment=list") as response:
        assert response.status == 401


async def test_desk_has_no_serious_accessibility_violations(
    browser: Browser, desk: RunningService, axe_script: Path
) -> None:
    """axe-core finds no serious or critical violations on the login page and on a desk
    with categories, states, clusters, entities and a notice."""
    page = await browser.new_page()
    await page.goto(f"{desk.url}/responders")
    violations = await axe_violations(page, axe_script)
    assert not violations, describe(violations)

    await tip(desk, "Gas smell and smoke near the school gates", lat=53.48, lon=-2.24)
    newest = await tip(desk, "Gas smell and smoke near the school gates")
    await tip(desk, "Suspect running with a knife", media_url="https://example.org/p.jpg")
    page = await logged_in(await browser.new_context(), desk)
    # The two copies show once, as the newest with the count.
    await page.locator(f"#reply-{newest}").get_by_role("button", name="Escalate").click()
    await expect(page.locator(".notice")).to_be_visible()
    violations = await axe_violations(page, axe_script)
    assert not violations, describe(violations)


async def test_answer_box_survives_a_live_refresh_and_sends_an_sms(
    browser: Browser, tmp_path: Path
) -> None:
    """An SMS reply's answer box opens on demand; a new tip waits while the responder writes
    in it, and once focus leaves, the list refreshes with the box still open and the text
    kept; the answer reaches the sender through the Twilio simulator."""
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    async with TwilioSimulator() as twilio:
        async for site in start_listening(
            tmp_path,
            http={"port": port, "public_url": public, "sse_keepalive_seconds": 1.0},
            channels={"sms": sms_channel(twilio)},
        ):
            status, _ = await twilio.send_inbound(
                f"{public}/hooks/twilio/sms", "+447700900123", "Smoke from the school roof"
            )
            assert status == 200
            [stored] = await site.service.store.list_replies(limit=10)
            context = await browser.new_context()
            page = await logged_in(context, site)
            await expect(page.locator("html")).to_have_attribute("data-live", "connected")
            article = page.locator(f"#reply-{stored.id}")
            answer = article.get_by_label("Answer +447700900123 by SMS")
            await expect(answer).to_be_hidden()
            await article.locator("summary").click()
            await expect(answer).to_be_visible()
            await answer.fill("Crews are on the way.")

            newer = await tip(site, "Flood water over the road at the ford")
            await expect(page.locator("#live-status")).to_be_empty()  # the swap waits
            await page.locator("h1").click()  # focus leaves the box: the list refreshes
            await expect(page.locator(f"#reply-{newer}")).to_be_visible(timeout=2000)
            article = page.locator(f"#reply-{stored.id}")
            answer = article.get_by_label("Answer +447700900123 by SMS")
            await expect(answer).to_be_visible()  # still open after the swap
            await expect(answer).to_have_value("Crews are on the way.")

            await article.get_by_role("button", name="Send answer").click()
            await expect(page.locator(".notice")).to_have_text(
                f"Your answer to reply {stored.id} was sent."
            )
            sent = twilio.messages[-1]
            assert (sent["to"], sent["body"]) == ("+447700900123", "Crews are on the way.")
            await context.close()


async def test_similar_reports_show_once_with_a_count(
    browser: Browser, desk: RunningService
) -> None:
    """Copies of one report show as its newest copy with the count and a link to each one;
    "Each one" lists every reply; dismissing the shown copy also dismisses the older copies
    still new (audited with the reply it went with), never one another responder handled,
    nor a copy that arrived after the page was drawn."""
    text = "Gunman seen running down Wellington Road towards the station, police on scene"
    first = await tip(desk, text)
    await tip(desk, "RT @someone: " + text)
    newest = await tip(desk, text + "!!")
    other = await tip(desk, "Flood water rising fast on the A58 near Bolton, two cars stuck")
    # Without JavaScript: the live refresh would show the late copy as the newest at once.
    context = await browser.new_context(java_script_enabled=False)
    page = await logged_in(context, desk)
    articles = page.locator("article.reply")
    await expect(articles).to_have_count(2)
    await expect(page.locator(f"#reply-{other}")).to_be_visible()
    shown = page.locator(f"#reply-{newest}")
    await expect(shown.locator(".cluster-note")).to_contain_text("3 similar reports")
    await shown.get_by_role("link", name="Show each one").click()
    await expect(articles).to_have_count(3)  # that cluster only
    await expect(page.locator(".cluster-view")).to_contain_text(f"similar to reply {first}")
    await expect(page.locator(f"#reply-{other}")).to_have_count(0)

    await page.goto(f"{desk.url}/responders?similar=each")
    await expect(articles).to_have_count(4)
    await expect(page.get_by_label("Similar reports", exact=True)).to_have_value("each")

    await desk.service.desk.act(first, "escalate", "other-responder", "armed, confirmed")
    await page.goto(f"{desk.url}/responders")
    shown = page.locator(f"#reply-{newest}")
    await expect(shown.get_by_label("Also the other 2 similar reports")).to_be_checked()
    later = await tip(desk, text + "?")  # arrives after the page was drawn
    await shown.get_by_role("button", name="Dismiss").click()
    await expect(page.locator(".notice")).to_have_text(
        f"Reply {newest} dismissed. So was 1 similar report."
    )
    rows = await desk.service.store.audit_rows(0, 100)
    dismissed = {r.detail["reply_id"]: r.detail for r in rows if r.action == "reply.dismiss"}
    assert set(dismissed) == {first + 1, newest}
    assert dismissed[first + 1]["with_reply"] == newest
    assert "with_reply" not in dismissed[newest]
    states = {n: (await desk.service.desk.get_reply(n))[0].state for n in (first, later, other)}
    assert states == {
        first: ReplyState.ESCALATED,
        later: ReplyState.NEW,
        other: ReplyState.NEW,
    }
    await context.close()


async def test_an_unticked_similar_box_stays_unticked_across_a_refresh(
    browser: Browser, desk: RunningService
) -> None:
    """A responder unticks "also the other similar reports"; a new tip refreshes the list
    live, and the box is still unticked."""
    text = "Gunman seen running down Wellington Road towards the station, police on scene"
    await tip(desk, text)
    newest = await tip(desk, text + "!!")
    context = await browser.new_context()
    page = await logged_in(context, desk)
    await expect(page.locator("html")).to_have_attribute("data-live", "connected")
    box = page.locator(f"#similar-{newest}")
    await box.uncheck()
    await page.locator("h1").click()  # focus leaves the list
    other = await tip(desk, "Flood water rising fast on the A58 near Bolton, two cars stuck")
    await expect(page.locator(f"#reply-{other}")).to_be_visible(timeout=2000)
    await expect(page.locator(f"#similar-{newest}")).not_to_be_checked()
    await context.close()


async def shown_ids(page: Page) -> list[int]:
    ids = await page.locator("article.reply").evaluate_all("els => els.map(e => e.id)")
    return [int(i.removeprefix("reply-")) for i in ids]


async def test_the_desk_pages_back_through_a_long_incident(
    browser: Browser, desk: RunningService
) -> None:
    """With 130 reports (a cluster of 25 copies among them, 5 of them old), the newest page
    shows 100 items and "Older replies" the other 7, no single report on both; there the
    cluster's older copies are offered as such and an action on them returns to that page;
    the older page stays put when a new tip arrives (and says where it went); "Newest
    replies" goes back; filters carry over to the older page; a bad cursor is said to be."""
    store = desk.service.store
    first_copy = None
    singles = []
    for n in range(130):
        copy = n < 5 or 30 <= n < 50  # copies of one report, grouped as one item
        text = "Smoke over the A6 at Levenshulme" if copy else f"Report {n} from the street"
        new = NewReply(reply(f"SM{n}", text), cluster_id=first_copy if copy else None)
        stored = (await store.insert_reply(new)).reply
        if not copy:
            singles.append(stored.id)
        elif first_copy is None:
            first_copy = stored.id
            await store.set_reply_cluster(stored.id, stored.id)  # as the clusterer does
    context = await browser.new_context()
    page = await logged_in(context, desk)
    await expect(page.locator(".reply")).to_have_count(100)
    await expect(page.locator(".reply", has_text="Smoke over the A6")).to_have_count(1)
    await expect(page.locator(".paged-note")).to_have_count(0)
    newest = await shown_ids(page)
    await page.get_by_role("link", name="Older replies").click()
    await expect(page).to_have_title("Older replies — Responder desk")
    await expect(page.locator(".paged-note")).to_contain_text("Older replies")
    await expect(page.locator(".reply")).to_have_count(7)
    await expect(page.get_by_role("link", name="Older replies")).to_have_count(0)
    older = await shown_ids(page)
    assert older == sorted(older, reverse=True)
    assert not set(newest) & set(older) & set(singles)
    assert set(singles) <= set(newest + older)
    assert len(set(newest + older) - set(singles)) == 2  # the cluster on each page

    oldest = page.locator(f"#reply-{older[-1]}")  # the cluster's newest copy on this page
    await expect(oldest.locator(".cluster-note")).to_contain_text("newest on this page")
    await expect(oldest.get_by_label("Also the older similar reports")).to_be_checked()
    await oldest.get_by_role("button", name="Acknowledge").click()
    await expect(page.locator(".notice")).to_have_text(
        f"Reply {older[-1]} acknowledged. So were 4 similar reports."
    )
    await expect(page.locator(".reply")).to_have_count(7)  # still the older page
    await expect(page.locator(f"#reply-{older[-1]} .handled")).to_contain_text("by test-responder")
    await expect(page.locator("html")).to_have_attribute("data-live", "connected")
    refreshed = await page.locator("html").get_attribute("data-live-refreshed")
    tip_id = await tip(desk, "Fire alarm ringing at the library")
    await expect(page.locator("#live-status")).to_contain_text(
        f"New reply {tip_id} (hazard), on the newest page."
    )
    await expect(page.locator("html")).not_to_have_attribute("data-live-refreshed", refreshed or "")
    await expect(page.locator(".reply")).to_have_count(7)  # the new tip is not on this page
    await page.get_by_role("link", name="Newest replies").first.click()
    await expect(page.locator(".reply").first).to_contain_text("Fire alarm ringing")

    await page.goto(f"{desk.url}/responders?similar=each&since=2026-01-01T00:00:00Z")
    older_link = page.get_by_role("link", name="Older replies")
    assert "since=2026-01-01T00%3A00%3A00%2B00%3A00" in (
        await older_link.get_attribute("href") or ""
    )
    await page.goto(f"{desk.url}/responders?before=abc")
    await expect(page.get_by_role("alert")).to_contain_text("That filter was not understood")
    await context.close()


async def test_the_desk_lists_the_replies_to_one_alert(
    browser: Browser, desk: RunningService
) -> None:
    """A reply that answers an alert links to all replies to it; that page names the alert,
    lists only its replies, and keeps to it when another filter is chosen."""
    alert = await post_alert(desk, "Gas leak on Market St")
    gas = await tip(desk, "Strong smell of gas by the bank", alert_id=alert["id"])
    fire = await tip(desk, "Fire in the bins behind the bank", alert_id=alert["id"])
    await tip(desk, "Smoke over the A6")  # answers no alert
    context = await browser.new_context(java_script_enabled=False)
    page = await logged_in(context, desk)
    await expect(page.locator(".reply")).to_have_count(3)
    await page.locator(f"#reply-{gas}").get_by_role("link", name="all replies to it").click()
    await expect(page.locator(".cluster-view")).to_contain_text(
        f"Replies answering alert “Gas leak on Market St” ({alert['id']})"
    )
    assert await shown_ids(page) == [fire, gas]
    await expect(page.get_by_role("link", name="all replies to it")).to_have_count(0)
    await page.get_by_label("Category").select_option("hazard")
    await page.get_by_role("button", name="Show").click()
    await expect(page.locator(".cluster-view")).to_contain_text("Gas leak on Market St")
    await expect(page.locator(".reply")).to_have_count(2)  # the keyword triage: gas, fire
    await context.close()
