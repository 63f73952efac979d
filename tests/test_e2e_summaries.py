"""End to end in headless Chromium against `appliance run` (gunicorn + TLS, asr, the assistant worker) and the
session's real llama.cpp server (Gemma 270M): a summary is asked for on the recording page, appears under the
template's heading when the worker is done (the page polls), a citation link jumps the player to the cited line,
and the review gate lets reviewed text be copied (the clipboard holds the plain text, headings kept) and marked
transferred, which the recording list shows.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.e2e_helpers import CHROMIUM, CHROMIUM_ARGS, appliance_running, first_sign_in, until, upload_in_browser

pytestmark = pytest.mark.e2e


@pytest.fixture
def running_with_llm(tmp_path, model_store, llm_server):
    # the session's llama.cpp server instead of a second one (as when IT points at a server elsewhere)
    with appliance_running(tmp_path, model_store, APPLIANCE_ASSISTANT__POLL_SECONDS="0.2",
                           APPLIANCE_ASSISTANT__MAX_STATEMENTS_PER_HEADING="2",
                           APPLIANCE_ASSISTANT__STATEMENT_MAX_CHARS="90", APPLIANCE_LLM__SERVE="false",
                           APPLIANCE_LLM__BASE_URL=llm_server) as r:
        yield r.base, r.password, r.app


def test_summary_citation_jumps_player_and_review_gate_copies(running_with_llm, sv_long_clip):
    base, password, _app = running_with_llm
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(ignore_https_errors=True, locale="sv-SE")
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        page = context.new_page()
        first_sign_in(page, base, password)

        upload_in_browser(page, base, "Hembesök", sv_long_clip)
        expect(page.locator("[data-start]").first).to_be_visible(timeout=180_000)

        # Ask for the plain-language advice list (the Sammanfattningar tab); the page polls until it is written.
        page.get_by_role("tab", name="Sammanfattningar").click()
        page.get_by_label("Mall").select_option("rad")
        page.get_by_role("button", name="Skriv sammanfattning").click()
        card = page.locator("article.summary").first
        expect(card.get_by_role("heading", name="Råd och överenskommelser")).to_be_visible(timeout=180_000)
        expect(card.locator("h3 .tag")).to_have_text("Utkast")
        expect(card.locator("button.copy-summary")).to_have_count(0)  # a draft cannot be copied
        card.screenshot(path=str(Path(os.environ.get("E2E_SCREENSHOT_DIR", "/tmp")) / "e2e-summary.png"))

        # A citation jumps the player to the cited line's start.
        cite = card.locator("a.cite").first
        expect(cite).to_be_visible()
        t = float(cite.get_attribute("data-seek"))
        audio = page.locator("audio")
        until(page, "document.querySelector('audio').readyState >= 1", timeout=20)
        cite.click()
        until(page, f"Math.abs(document.querySelector('audio').currentTime - {t}) < 1.5", timeout=10)
        audio.evaluate("a => a.pause()")

        # Review gate: reviewed → copy (plain text, headings kept) → transferred.
        card.get_by_role("button", name="Markera som granskad").click()
        card = page.locator("article.summary").first
        expect(card.locator("h3 .tag")).to_have_text("Granskad")
        page.wait_for_load_state()  # the reloaded page's scripts (the copy button is JavaScript's) have run
        card.get_by_role("button", name="Kopiera texten").click()
        expect(card.locator(".copy-status")).to_have_text("Texten är kopierad.")
        copied = page.evaluate("() => navigator.clipboard.readText()")
        assert copied.startswith("Råd till klienten (lätt språk)\n\nRåd och överenskommelser\n- "), copied
        card.get_by_role("button", name="Markera som överförd till verksamhetssystemet").click()
        expect(page.locator("article.summary h3 .tag").first).to_have_text("Överförd till verksamhetssystemet")
        page.goto(base + "/")
        expect(page.locator("table.recordings .review-overford")).to_be_visible()
        browser.close()
