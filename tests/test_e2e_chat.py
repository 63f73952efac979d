"""End to end in Chromium: `appliance run` (gunicorn + TLS, the asr worker, the assistant worker) against the
session's real llama.cpp server; upload Swedish speech, wait for the transcript, ask a question: the answer
streams into the page statement by statement, and a citation link jumps the player to its line.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.e2e_helpers import CHROMIUM, CHROMIUM_ARGS, SECRET_WORDS, appliance_running, first_sign_in, upload_in_browser
from tests.llm_fixtures import INSTRUCT_MODEL

pytestmark = pytest.mark.e2e

# Records every distinct text of the answer being written, so the test can see it grow piece by piece.
_WATCH = """() => {
  window.__partials = [];
  const log = document.getElementById("chat-log");
  new MutationObserver(() => {
    const w = log.querySelector(".stmt-writing .stmt-text");
    if (w && w.textContent && window.__partials[window.__partials.length - 1] !== w.textContent) {
      window.__partials.push(w.textContent);
    }
  }).observe(log, {subtree: true, childList: true, characterData: true});
}"""


def _wait_audio(page, predicate: str, timeout: float = 20) -> None:
    """Poll the player from Python: page.wait_for_function would need eval, which the strict CSP forbids."""
    audio = page.locator("audio")
    end = time.monotonic() + timeout
    while not audio.evaluate(predicate):
        assert time.monotonic() < end, f"audio never satisfied {predicate}"
        time.sleep(0.1)


def _run(tmp_path, model_store, llm_url: str, **model: str):
    # a model server elsewhere (the session's llama.cpp server, or a dead port): no llm unit of its own
    with appliance_running(tmp_path, model_store, secret_words=(*SECRET_WORDS, "Vad handlar"),
                           APPLIANCE_LLM__SERVE="false", APPLIANCE_LLM__BASE_URL=llm_url,
                           APPLIANCE_LLM__CONNECT_TIMEOUT_SECONDS="3", **model) as r:
        yield r.base, r.password


@pytest.fixture
def running_with_llm(tmp_path, model_store, instruct_llm_server):
    # the default instruct model: it writes sentences, so a statement grows piece by piece on the page (the small
    # base model, asked with the same prompt, often answers a word per statement)
    yield from _run(tmp_path, model_store, instruct_llm_server, **INSTRUCT_MODEL)


@pytest.fixture
def running_llm_down(tmp_path, model_store, dead_llm_url):
    yield from _run(tmp_path, model_store, dead_llm_url)


def _signed_in_with_transcript(browser, base: str, password: str, clip, requests: list[str] | None = None):
    page = browser.new_context(ignore_https_errors=True, locale="sv-SE").new_page()
    if requests is not None:
        page.on("request", lambda r: requests.append(f"{r.method} {r.url}"))
    first_sign_in(page, base, password)
    upload_in_browser(page, base, "Hembesök", clip)
    expect(page).to_have_url(re.compile(r"/recordings/[0-9a-f]+$"))
    expect(page.locator("#transcript [data-start]").first).to_be_visible(timeout=180_000)
    return page


def test_chat_answer_streams_in_and_a_citation_jumps_the_player(running_with_llm, sv_clip):
    base, password = running_with_llm
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        requests: list[str] = []
        page = _signed_in_with_transcript(browser, base, password, sv_clip, requests)
        _wait_audio(page, "a => a.readyState >= 1")
        # the finished transcript's page asks the model server to read it at once (the Fråga tab is open), before
        # anyone touches the question field, so the first answer need not wait for the whole transcript
        end = time.monotonic() + 10
        while not any(r.startswith("POST ") and r.endswith("/chat/warm") for r in requests):
            assert time.monotonic() < end, [r for r in requests if "/recordings/" in r]
            time.sleep(0.1)
        assert page.evaluate("document.activeElement.id") != "chat-question"

        page.evaluate(_WATCH)
        page.get_by_label("Din fråga").fill("Vad handlar samtalet om?")
        page.get_by_role("button", name="Fråga", exact=True).click()
        expect(page.locator("#chat-form .assistant-status")).to_have_text(re.compile("Svaret är klart"),
                                                                          timeout=180_000)
        partials = page.evaluate("window.__partials")
        # the statement being written grew in pieces (each statement starts again from empty)
        grew = [(a, b) for a, b in zip(partials, partials[1:], strict=False) if b.startswith(a) and len(b) > len(a)]
        assert len(grew) >= 2, partials

        answer = page.locator("#chat-log .chat-msg").last
        expect(answer.locator(".stmt").first).to_be_visible()
        cite = answer.locator("a.cite").last
        expect(cite).to_be_visible()
        target = float(cite.get_attribute("data-seek"))
        cite.click()
        _wait_audio(page, f"a => Math.abs(a.currentTime - {target}) < 1.0")
        seg = cite.get_attribute("href")
        assert re.fullmatch(r"#seg-\d+", seg)
        assert float(page.locator(seg).get_attribute("data-start")) == pytest.approx(target, abs=0.01)
        browser.close()


def test_model_down_shows_a_clear_message_and_a_retry(running_llm_down, sv_clip):
    base, password = running_llm_down
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = _signed_in_with_transcript(browser, base, password, sv_clip)
        page.get_by_label("Din fråga").fill("Vad handlar samtalet om?")
        t0 = time.monotonic()
        page.get_by_role("button", name="Fråga", exact=True).click()
        alert = page.locator("#chat-log .chat-error[role=alert]")
        expect(alert).to_contain_text("Språkmodellen svarar inte just nu", timeout=20_000)
        assert time.monotonic() - t0 < 20
        expect(page.get_by_role("button", name="Fråga", exact=True)).to_be_enabled()
        retry = alert.get_by_role("button", name="Försök igen")
        retry.click()  # asks again: the same clear answer, still no hang
        expect(page.locator("#chat-log .chat-error[role=alert]")).to_have_count(1, timeout=20_000)
        expect(page.locator("#chat-log .chat-error[role=alert]")).to_contain_text("Språkmodellen svarar inte")
        # the topic table of contents (the Innehåll tab) says the same, with its own retry
        page.get_by_role("tab", name="Innehåll").click()
        page.get_by_role("button", name="Skapa innehållsförteckning").click()
        topics_alert = page.locator("#topics .chat-error[role=alert]")
        expect(topics_alert).to_contain_text("Språkmodellen svarar inte", timeout=20_000)
        expect(topics_alert.get_by_role("button", name="Försök igen")).to_be_visible()
        browser.close()
