"""End to end in Chromium, the access story of DESIGN.md: the administrator invites a caseworker and a
manager; each accepts the invitation, enrols TOTP and accepts the usage guidelines; the caseworker uploads
a conversation and shares her folder with the manager as editor; the manager sees and edits it; after
unsharing, the manager gets 404. Real `appliance run` (gunicorn + TLS + asr), real browser."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.e2e_helpers import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.e2e
SHOTS = Path(os.environ.get("E2E_SCREENSHOT_DIR", "/tmp"))
PASSWORDS = {"karin": "Barnets-bästa-i-centrum-42", "maja": "Närmaste-chef-backup-2026"}


def enrol_and_accept(page: Page) -> None:
    """First sign-in: TOTP enrolment from the QR page, then the usage guidelines."""
    expect(page.locator("#totp-secret")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "").strip()
    page.locator("input[name=code]").fill(pyotp.TOTP(secret).now())
    page.locator("main form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/guidelines"))
    page.locator("input[name=accept]").check()
    page.get_by_role("button", name="Godkänn och fortsätt").click()
    expect(page.get_by_role("heading", name="Mina inspelningar")).to_be_visible()


def invite(page: Page, base: str, name: str, username: str, role: str) -> str:
    page.goto(base + "/admin/users")
    page.locator("#display_name").fill(name)
    page.locator("#email").fill(f"{username}@kommun.local")
    page.locator("#username").fill(username)
    page.locator(f"input[name=role_{role}]").last.check()
    page.get_by_role("button", name="Skapa inbjudan").click()
    link = page.locator("#invite-link").inner_text().strip()
    assert re.fullmatch(r"https://127\.0\.0\.1:\d+/invite/\S+", link), link
    return link


def accept_invitation(page: Page, link: str, username: str) -> None:
    page.goto(link)
    page.locator("#password").fill(PASSWORDS[username])
    page.locator("#password2").fill(PASSWORDS[username])
    page.get_by_role("button", name="Spara lösenord och fortsätt").click()
    enrol_and_accept(page)


def test_invite_share_edit_unshare(running, sv_clip):
    base, admin_password, _ = running
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        def new_page() -> Page:
            return browser.new_context(ignore_https_errors=True, locale="sv-SE").new_page()

        admin = new_page()
        admin.goto(base + "/login")
        admin.get_by_label("Användarnamn").fill("admin")
        admin.get_by_label("Lösenord").fill(admin_password)
        admin.get_by_role("button", name=re.compile("Logga in")).click()
        enrol_and_accept(admin)
        karin_link = invite(admin, base, "Karin Handläggare", "karin", "caseworker")
        maja_link = invite(admin, base, "Maja Chef", "maja", "manager")
        admin.screenshot(path=str(SHOTS / "e2e-admin-users.png"), full_page=True)
        users_page = admin.locator("main").inner_text()
        assert "karin" in users_page and "maja" in users_page

        karin, maja = new_page(), new_page()
        accept_invitation(karin, karin_link, "karin")
        accept_invitation(maja, maja_link, "maja")

        # Karin uploads into her private folder; Maja sees nothing yet.
        karin.goto(base + "/upload")
        karin.locator("input[name=title]").fill("Samtal med mamma")
        karin.locator("input[type=file]").set_input_files(str(sv_clip))
        karin.locator("main form button[type=submit]").click()
        expect(karin).to_have_url(re.compile(r"/recordings/[0-9a-f]+$"))
        recording_url = karin.url
        assert maja.goto(recording_url).status == 404
        maja.goto(base + "/")
        assert "Samtal med mamma" not in maja.locator("main").inner_text()

        # Karin shares "Mina inspelningar" with Maja as editor; the folder list shows it.
        karin.goto(base + "/folders")
        karin.locator("main").get_by_role("link", name="Mina inspelningar").first.click()
        expect(karin).to_have_url(re.compile(r"/folders/\d+$"))
        karin.locator("#share-user").select_option(label="Maja Chef")
        karin.locator("input[name=role][value=editor]").check()
        karin.get_by_role("button", name="Dela mappen").click()
        expect(karin.locator("main")).to_contain_text("Maja Chef")
        karin.screenshot(path=str(SHOTS / "e2e-folder-shared.png"), full_page=True)
        folder_url = karin.url

        # Maja sees it in her list and edits it (renames the recording).
        maja.goto(base + "/")
        maja.get_by_role("link", name="Samtal med mamma").click()
        expect(maja).to_have_url(recording_url)
        expect(maja.locator("[data-start]").first).to_be_visible(timeout=120_000)  # transcript ready, no reload
        maja.get_by_text("Ändra titel eller flytta").click()
        maja.locator("#rename-title").fill("Samtal med mamma, del 1")
        maja.get_by_role("button", name="Spara titel").click()
        expect(maja.get_by_role("heading", name="Samtal med mamma, del 1")).to_be_visible()
        karin.goto(recording_url)
        expect(karin.get_by_role("heading", name="Samtal med mamma, del 1")).to_be_visible()

        # Karin stops sharing: Maja's very next request is a 404, and the recording is gone from her list.
        karin.goto(folder_url)
        karin.get_by_role("button", name=re.compile("Sluta dela")).click()
        expect(karin.locator("main")).to_contain_text("Delningen är borttagen")
        expect(karin.locator("main")).to_contain_text("Ingen – privat")
        assert maja.goto(recording_url).status == 404
        maja.goto(base + "/")
        assert "Samtal med mamma" not in maja.locator("main").inner_text()
        browser.close()
