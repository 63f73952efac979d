"""End to end, as a newcomer would: `appliance run` (what `make run` starts), sign in with the printed
credentials, enrol TOTP, upload a Swedish clip, read its transcript and play from a line — in a real
headless Chromium against real gunicorn (TLS), the real asr process and the real Whisper model.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import recognised
from tests.e2e_helpers import CHROMIUM, CHROMIUM_ARGS, until

pytestmark = pytest.mark.e2e


def test_signin_enrol_upload_read_and_play(running, sv_clip):
    base, password, app = running
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(ignore_https_errors=True, locale="sv-SE").new_page()
        page.goto(base + "/")
        expect(page).to_have_url(re.compile(r"/login"))
        page.get_by_label("Användarnamn").fill("admin")
        page.get_by_label("Lösenord").fill(password)
        page.get_by_role("button", name=re.compile("Logga in")).click()

        # First sign-in: enrol TOTP from the QR page (the secret is also shown for manual entry).
        expect(page.locator("svg").first).to_be_visible()
        secret = page.locator("#totp-secret").inner_text().replace(" ", "").strip()
        page.locator("input[name=code]").fill(pyotp.TOTP(secret).now())
        page.locator("form button[type=submit]").click()
        # Then the usage guidelines, accepted once per version.
        expect(page.get_by_role("heading", name="Riktlinjer för Samtalsstöd")).to_be_visible()
        page.get_by_label("Jag har läst och förstått riktlinjerna och följer dem.").check()
        page.get_by_role("button", name="Godkänn och fortsätt").click()
        expect(page.get_by_role("heading", name="Mina inspelningar")).to_be_visible()

        page.goto(base + "/upload")
        page.locator("input[name=title]").fill("Hembesök")
        page.locator("input[type=file]").set_input_files(str(sv_clip))
        page.locator("form button[type=submit]").click()
        expect(page).to_have_url(re.compile(r"/recordings/[0-9a-f]+$"))

        # The asr worker picks it up; the page updates itself when the transcript is ready.
        segments = page.locator("[data-start]")
        expect(segments.first).to_be_visible(timeout=120_000)
        transcript = page.locator("body").inner_text()
        recognised(transcript)

        audio = page.locator("audio")
        until(page, "document.querySelector('audio').readyState >= 1", timeout=20)
        duration = audio.evaluate("a => a.duration")
        assert 8 < duration < 11

        # Click the second line: playback starts from its start time.
        second = segments.nth(1)
        start = float(second.get_attribute("data-start"))
        second.click()
        until(page, "!document.querySelector('audio').paused", timeout=10)
        t = audio.evaluate("a => a.currentTime")
        assert start - 0.1 <= t <= start + 2.0

        # Space toggles play/pause.
        page.locator("body").press(" ")
        until(page, "document.querySelector('audio').paused", timeout=5)
        page.screenshot(path=str(Path(os.environ.get("E2E_SCREENSHOT_DIR", "/tmp")) / "e2e-recording.png"),
                        full_page=True)

        # Correct the second line inline (fetch, no reload); the edit is kept and marked.
        recording_url = page.url
        line = segments.nth(1)
        corrected = "Vi ska prata om barnets skola och familjens ekonomi hos socialsekreteraren."
        line.locator(".seg-edit-link").click()  # the editor opens in the line
        line.locator(".line-editor textarea[name=text]").fill(corrected)
        line.locator(".line-editor .seg-edit-form button[type=submit]").click()
        expect(page.locator("#transcript-status")).to_have_text("Raden är sparad.")
        expect(line.locator(".seg-text")).to_have_text(corrected)
        page.reload()
        expect(page.locator(".seg-edited").first).to_be_visible()

        # Search finds the corrected word from another inflection, and the hit jumps to its time in the player.
        page.goto(base + "/search?q=socialsekreterare")
        hit = page.locator(".search-snippet mark").first
        expect(hit).to_be_visible()
        page.locator("main a[href*='t=']").first.click()
        expect(page).to_have_url(re.compile(re.escape(recording_url) + r"\?t="))
        t = float(re.search(r"t=([0-9.]+)", page.url).group(1))
        assert abs(t - start) < 0.1  # the hit is the edited second line
        until(page, f"Math.abs(document.querySelector('audio').currentTime - {t}) < 0.5", timeout=20)
        browser.close()
