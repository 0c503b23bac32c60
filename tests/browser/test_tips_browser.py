"""The tip form in a real browser: it posts with its CSRF cookie and token, without
JavaScript too, and axe-core finds no serious violations on the form or the thank-you page."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, expect

from tests.browser.test_public_pages_browser import axe_violations, describe
from tests.conftest import RunningService


async def test_tip_form_posts_and_is_accessible(
    browser: Browser, site: RunningService, axe_script: Path
) -> None:
    """A report typed into /tips (JavaScript off) is stored; both pages pass axe-core."""
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    await page.goto(f"{site.url}/tips")
    await page.get_by_label("What did you see, and where? (required)").fill(
        "Smoke coming from the old mill on Canal St"
    )
    await page.get_by_label("How can responders contact you? (optional)").fill("+447911000001")
    await page.get_by_role("button", name="Send report").click()
    await expect(page.locator("h1")).to_contain_text("your report was received")
    replies = await site.service.store.list_replies(limit=10)
    assert [r.text for r in replies] == ["Smoke coming from the old mill on Canal St"]
    assert replies[0].sender == "+447911000001"
    await context.close()

    page = await browser.new_page()
    await page.goto(f"{site.url}/tips")
    violations = await axe_violations(page, axe_script)
    assert not violations, describe(violations)
    await page.get_by_label("What did you see, and where? (required)").fill("Flooded underpass")
    await page.get_by_role("button", name="Send report").click()
    await expect(page.locator("h1")).to_contain_text("your report was received")
    violations = await axe_violations(page, axe_script)
    assert not violations, describe(violations)
