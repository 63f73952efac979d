"""Shared steps of the browser tests: the dev administrator's first sign-in (password, TOTP enrolment,
usage guidelines). tests/test_e2e.py walks the same steps with assertions of its own."""

from __future__ import annotations

import re

import pyotp
from playwright.sync_api import expect


def first_sign_in(page, base: str, password: str, username: str = "admin") -> None:
    """Sign in for the first time: enrol TOTP from the page's secret, accept the guidelines, land on the list."""
    page.goto(base + "/login")
    page.get_by_label("Användarnamn").fill(username)
    page.get_by_label("Lösenord").fill(password)
    page.get_by_role("button", name=re.compile("Logga in")).click()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "").strip()
    page.locator("input[name=code]").fill(pyotp.TOTP(secret).now())
    page.locator("main form button[type=submit]").click()
    page.get_by_label("Jag har läst och förstått riktlinjerna och följer dem.").check()
    page.get_by_role("button", name="Godkänn och fortsätt").click()
    expect(page.get_by_role("heading", name="Mina inspelningar")).to_be_visible()
