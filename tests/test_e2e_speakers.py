"""End to end in headless Chromium: a two-voice Swedish dialogue is uploaded with the "number of speakers" left
empty, the real asr process transcribes and diarizes it, the lines show two speakers; the caseworker names one
("Handläggare", every line of theirs follows without a reload) and moves one line to the other speaker, and
both survive a reload."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.e2e_helpers import CHROMIUM, CHROMIUM_ARGS, first_sign_in, upload_in_browser
from tests.test_diarization import dialogue  # noqa: F401 - the two-voice clip fixture

pytestmark = pytest.mark.e2e



def test_speakers_shown_renamed_and_fixed(running, dialogue):
    base, password, _app = running
    clip, truth = dialogue
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(ignore_https_errors=True, locale="sv-SE").new_page()
        first_sign_in(page, base, password)
        upload_in_browser(page, base, "Hembesök", clip)
        expect(page).to_have_url(re.compile(r"/recordings/[0-9a-f]+$"))

        lines = page.locator("li.seg")
        expect(lines.first).to_be_visible(timeout=180_000)
        labels = page.locator("#transcript .seg-speaker")
        expect(labels.first).to_have_text("Talare 1")
        assert set(labels.all_inner_texts()) == {"Talare 1", "Talare 2"}
        n_first = labels.filter(has_text="Talare 1").count()

        # Name speaker 1 once in the compact Talare panel: every one of their lines follows, in place (no reload).
        page.locator("#speakers > summary").click()
        page.get_by_label("Namn på talare 1").fill("Handläggare")
        page.locator("form.speaker-name-form").first.get_by_role("button", name="Byt namn").click()
        expect(page.locator("#transcript .seg-speaker", has_text="Handläggare")).to_have_count(n_first)
        expect(page.locator("#transcript .seg-speaker", has_text="Talare 1")).to_have_count(0)

        # Move the first line to speaker 2 from the editor opened in the line, controls with labels.
        first = lines.first
        first.locator(".seg-edit-link").click()
        first.get_by_label(re.compile("Talare för raden")).select_option("2")
        first.get_by_role("button", name="Byt talare").click()
        expect(first.locator(".seg-speaker")).to_have_text("Talare 2")
        expect(page.locator(".speaker-lines[data-speaker='1']")).to_have_attribute("data-lines", str(n_first - 1))

        page.screenshot(path=str(Path(os.environ.get("E2E_SCREENSHOT_DIR", "/tmp")) / "e2e-speakers.png"),
                        full_page=True)
        page.reload()
        expect(lines.first.locator(".seg-speaker")).to_have_text("Talare 2")
        expect(page.locator("#transcript .seg-speaker", has_text="Handläggare")).to_have_count(n_first - 1)
        browser.close()
