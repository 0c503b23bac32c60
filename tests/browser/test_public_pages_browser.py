"""The public pages in a real browser (Chromium): live updates without a reload, history,
the language switch, pages with JavaScript off, a phone-width layout and axe-core checks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.conftest import RunningService
from tests.support.public_web import post_alert, until_published

WELSH = {"language": "cy", "headline": "Osgowch Stryd y Farchnad", "instruction": "Cadwch draw."}
POLYGON = {
    "description": "Market square",
    "polygon": [[51.5, -0.13], [51.51, -0.13], [51.51, -0.12], [51.5, -0.13]],
}


async def published(site: RunningService, headline: str, **fields: Any) -> str:
    body = await post_alert(site, headline, **fields)
    await until_published(site, body["id"])
    return str(body["id"])


async def live_page(browser: Browser, url: str) -> Page:
    """A page at `url` whose script has connected to the event stream."""
    page = await browser.new_page()
    await page.goto(url)
    await expect(page.locator("html")).to_have_attribute("data-live", "connected")
    return page


async def test_new_alert_appears_without_reload(browser: Browser, site: RunningService) -> None:
    """An alert POSTed through the API shows on an open / within 2 s, without a reload, and
    the polite live region says so."""
    page = await live_page(browser, f"{site.url}/")
    await expect(page.locator("#alert-list")).to_contain_text("No alerts in force")
    await page.evaluate("window.notReloaded = true")
    await post_alert(site, "Live alert arrives", severity="Extreme")
    await expect(page.locator("#alert-list")).to_contain_text("Live alert arrives", timeout=2000)
    await expect(page.locator("#live-status")).to_contain_text("New alert: Live alert arrives")
    assert await page.evaluate("window.notReloaded === true")


async def test_alert_page_shows_update_history_live(browser: Browser, site: RunningService) -> None:
    """An open alert page adds its Update to the history by itself, and says it was updated."""
    first = await published(site, "Original text")
    page = await live_page(browser, f"{site.url}/alerts/{first}")
    await expect(page.locator("#alert-history")).to_contain_text("IN FORCE")
    await post_alert(site, "Revised text", msg_type="Update", references=[first])
    history = page.locator("#alert-history")
    await expect(history).to_contain_text("Revised text", timeout=2000)
    await expect(history).to_contain_text("UPDATED")
    await expect(history.locator(".history-list li")).to_have_count(2)
    await history.get_by_role("link", name="Read the latest version").click()
    await expect(page.locator("h1")).to_contain_text("Revised text")


async def test_language_switch(browser: Browser, site: RunningService) -> None:
    """The Cymraeg link shows the Welsh block, marked lang="cy", on the list and the page."""
    alert_id = await published(site, "Avoid Market St", language="en-GB", translations=[WELSH])
    page = await browser.new_page()
    await page.goto(f"{site.url}/")
    await page.get_by_role("link", name="Cymraeg").click()
    await expect(page).to_have_url(f"{site.url}/?lang=cy")
    await expect(page.locator(".card .info[lang='cy'] h2")).to_have_text(WELSH["headline"])
    await page.get_by_role("link", name=WELSH["headline"]).click()
    await expect(page).to_have_url(f"{site.url}/alerts/{alert_id}?lang=cy")
    await expect(page.locator(".info[lang='cy']").first).to_contain_text(WELSH["headline"])
    await page.get_by_role("link", name="English").first.click()
    await expect(page.locator("h1")).to_contain_text("Avoid Market St")


async def test_screenshots_and_phone_width(
    browser: Browser, site: RunningService, tmp_path: Path, record_property: Any
) -> None:
    """Screenshots of the list and an alert page are saved; at 320 px nothing scrolls
    sideways."""
    alert_id = await published(
        site,
        "Avoid Market St: a gas main has ruptured near the station entrance",
        web="https://police.example/a-very-long-address-that-must-wrap-on-a-small-phone-screen",
        areas=[POLYGON],
        translations=[WELSH],
    )
    await published(site, "Drill", status="Exercise", severity="Minor")
    shots = []
    for width, path in (
        (1024, "/?exercises=1"),
        (320, "/?exercises=1"),
        (320, f"/alerts/{alert_id}"),
    ):
        context = await browser.new_context(viewport={"width": width, "height": 700})
        page = await context.new_page()
        await page.goto(f"{site.url}{path}")
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} scrolls sideways by {overflow} px at {width} px"
        shot = tmp_path / f"{width}{path.replace('/', '_').replace('?', '_')}.png"
        await page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 1000
        shots.append(str(shot))
        await context.close()
    record_property("screenshots", json.dumps(shots))
    print("screenshots:", *shots)


async def test_pages_work_with_javascript_off(browser: Browser, site: RunningService) -> None:
    """With JavaScript disabled the list, the exercise switch, the alert page and its
    languages all work as plain links."""
    alert_id = await published(site, "No script needed", translations=[WELSH])
    await published(site, "Exercise only", status="Exercise")
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    await page.goto(f"{site.url}/")
    await expect(page.locator("#alert-list")).to_contain_text("No script needed")
    await expect(page.locator("#alert-list")).not_to_contain_text("Exercise only")
    await page.get_by_role("link", name="Also show exercises and tests").click()
    await expect(page.locator("#alert-list")).to_contain_text("EXERCISE — NOT A REAL ALERT")
    await page.get_by_role("link", name="No script needed", exact=True).click()
    await expect(page).to_have_url(f"{site.url}/alerts/{alert_id}")
    await expect(page.locator("#alert-history")).to_contain_text("IN FORCE")
    await expect(page.locator("svg.area-map")).to_be_visible()
    await page.get_by_role("link", name="Cymraeg").click()
    await expect(page.locator("h1")).to_contain_text(WELSH["headline"])
    await context.close()


async def axe_violations(page: Page, axe_script: Path) -> list[dict[str, Any]]:
    # Evaluated over the DevTools protocol: the pages' CSP refuses an inline <script> tag.
    source = await asyncio.to_thread(axe_script.read_text, "utf-8")
    await page.evaluate(source + "\n;true")
    result: dict[str, Any] = await page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


def describe(violations: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(n["target"]) for n in v["nodes"][:5])
        for v in violations
    )


@pytest.mark.parametrize("path", ["/", "/?exercises=1", "/?lang=cy"])
async def test_list_has_no_serious_accessibility_violations(
    browser: Browser, site: RunningService, axe_script: Path, path: str
) -> None:
    """axe-core finds no serious or critical violations on the list of alerts."""
    for severity, status in (
        ("Extreme", "Actual"),
        ("Severe", "Actual"),
        ("Moderate", "Actual"),
        ("Minor", "Exercise"),
        ("Unknown", "Test"),
    ):
        await published(
            site, f"{severity} {status}", severity=severity, status=status, translations=[WELSH]
        )
    page = await browser.new_page()
    await page.goto(f"{site.url}{path}")
    violations = await axe_violations(page, axe_script)
    assert not violations, describe(violations)


async def test_alert_page_has_no_serious_accessibility_violations(
    browser: Browser, site: RunningService, axe_script: Path
) -> None:
    """axe-core finds no serious or critical violations on an updated, cancelled alert page
    (history, outline, banners), nor on the 404 page."""
    first = await published(
        site,
        "Original",
        areas=[POLYGON],
        translations=[WELSH],
        status="Exercise",
        sender_name="City Police",
        contact="101",
    )
    update = await published(
        site, "Revised", msg_type="Update", references=[first], areas=[POLYGON], status="Exercise"
    )
    await published(site, "Over", msg_type="Cancel", references=[update], status="Exercise")
    page = await browser.new_page()
    for path in (f"/alerts/{first}", f"/alerts/{update}?lang=cy", "/alerts/unknown"):
        await page.goto(f"{site.url}{path}")
        violations = await axe_violations(page, axe_script)
        assert not violations, f"{path}:\n{describe(violations)}"
