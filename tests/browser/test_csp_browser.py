"""The pages under their Content-Security-Policy in a real browser (Chromium): the list, an
alert with its SVG outline, the tip form and the responder desk load, run their scripts, post
their forms and keep their live updates, and the browser reports no CSP violation."""

from __future__ import annotations

from playwright.async_api import Browser, ConsoleMessage, Page, expect

from adapters.http.security import PAGE_CSP
from broadcaster.ports import Role
from tests.browser.test_public_pages_browser import published
from tests.conftest import RunningService


def watch(page: Page) -> list[str]:
    """Every CSP violation and script error the page reports."""
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        # (A missing /favicon.ico is logged as an error too: not a CSP matter.)
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


async def test_pages_work_under_the_csp(browser: Browser, site: RunningService) -> None:
    alert_id = await published(site, "Avoid Market St")
    page = await browser.new_page()
    problems = watch(page)

    response = await page.goto(f"{site.url}/")
    assert response is not None
    assert response.headers["content-security-policy"] == PAGE_CSP
    await expect(page.locator("html")).to_have_attribute("data-live", "connected")
    second = await published(site, "Stay indoors")
    await expect(page.locator(f"#title-{second}")).to_be_visible(timeout=5000)

    await page.goto(f"{site.url}/alerts/{alert_id}")
    await expect(page.locator("svg.area-map")).to_be_visible()
    box = await page.locator("svg.area-map").bounding_box()
    assert box is not None
    assert box["width"] > 50
    assert box["height"] > 50

    await page.goto(f"{site.url}/tips")
    await page.get_by_label("What did you see, and where? (required)").fill("Flooded underpass")
    await page.get_by_role("button", name="Send report").click()
    await expect(page.locator("h1")).to_contain_text("your report was received")

    await page.goto(f"{site.url}/responders")
    await page.get_by_label("Responder token").fill(site.tokens[Role.RESPONDER])
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator("h1")).to_have_text("Replies from the public")
    await expect(page.locator("html")).to_have_attribute("data-live", "connected")
    await expect(page.locator("#reply-list")).to_contain_text("Flooded underpass")
    assert problems == []
