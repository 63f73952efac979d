"""End to end with the model the appliance serves by default (the embedded instruction-tuned Qwen2.5-Coder 1.5B,
chat template from its GGUF): `appliance run` (gunicorn + TLS, asr with real Whisper, the assistant worker) against
the session's llama.cpp server with that model; a Swedish conversation spoken by espeak-ng is uploaded in Chromium,
a BBIC draft is asked for, and the draft fills some of BBIC's headings with statements whose cited transcript lines
hold their content words. Other browser tests use the small Gemma model (the machinery); this one judges the text.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from appliance.assistant.grounding import content_words
from appliance.transcripts.search import stem
from tests.conftest import speak_swedish
from tests.e2e_helpers import CHROMIUM, CHROMIUM_ARGS, appliance_running, first_sign_in, upload_in_browser
from tests.llm_fixtures import INSTRUCT_MODEL

pytestmark = pytest.mark.e2e

# A caseworker and a mother about her son (one espeak voice: base Whisper gets the gist of each sentence).
CONVERSATION = (
    "Vi ska prata om hur Leo har det hemma och i skolan. "
    "Leo sover dåligt och vaknar flera gånger varje natt. "
    "Han har ont i magen på morgnarna och stannar hemma från skolan två dagar i veckan. "
    "Leos pappa bor i Malmö och Leo träffar honom varannan helg. "
    "Mamma arbetar natt på ett äldreboende. "
    "Familjen bor i en liten lägenhet med två rum. "
    "Leo spelar fotboll två gånger i veckan och har många kompisar i laget. "
    "Mamma ska boka en tid på vårdcentralen för magen."
)
DRAFT_TIMEOUT_MS = 900_000  # a BBIC draft on two shared CPU cores, in the worst case


@pytest.fixture(scope="module")
def leo_clip(tmp_path_factory) -> Path:
    return speak_swedish(CONVERSATION, tmp_path_factory.mktemp("audio") / "leo")


@pytest.fixture
def running(tmp_path, model_store, instruct_llm_server):
    # the session's server with the default (instruct) model, as when IT points at a server elsewhere;
    # no transcript text in any unit's log
    with appliance_running(tmp_path, model_store, secret_words=("Leo", "Malmö", "äldreboende"),
                           APPLIANCE_ASSISTANT__POLL_SECONDS="0.2", APPLIANCE_LLM__READ_TIMEOUT_SECONDS="900",
                           APPLIANCE_LLM__SERVE="false", APPLIANCE_LLM__BASE_URL=instruct_llm_server,
                           **INSTRUCT_MODEL) as r:
        yield r.base, r.password


def _supported_share(statement: str, cited: list[str]) -> float:
    """Share of the statement's content words found in the cited lines (same light stem, or one extends the
    other), computed here independently of the page's own flags."""
    words = content_words(statement)
    stems = {stem(w) for line in cited for w in line.lower().replace(",", " ").replace(".", " ").split()}
    found = [w for w in words if any(s.startswith(stem(w)) or stem(w).startswith(s) for s in stems if len(s) >= 4)]
    return len(found) / len(words) if words else 0.0


def test_bbic_draft_with_the_instruct_model_fills_headings_with_cited_statements(running, leo_clip):
    base, password = running
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(ignore_https_errors=True, locale="sv-SE").new_page()
        first_sign_in(page, base, password)
        upload_in_browser(page, base, "Samtal med mamma", leo_clip)
        expect(page.locator("[data-start]").first).to_be_visible(timeout=300_000)
        lines = {el.get_attribute("id"): el.inner_text() for el in page.locator("[id^=seg-]").all()}
        assert len(lines) >= 3, lines

        page.get_by_role("tab", name="Sammanfattningar").click()  # the workspace's assistant tab
        page.get_by_label("Mall").select_option("bbic")
        page.get_by_role("button", name="Skriv sammanfattning").click()
        card = page.locator("article.summary").first
        expect(card.locator("h3 .tag")).to_have_text("Utkast", timeout=DRAFT_TIMEOUT_MS)
        card.screenshot(path=str(Path(os.environ.get("E2E_SCREENSHOT_DIR", "/tmp")) / "e2e-bbic-instruct.png"))

        filled, grounded = set(), []
        for heading in card.locator("h4").all():
            items = heading.locator("xpath=following-sibling::*[1][self::ul]/li")
            for li in items.all():
                filled.add(heading.inner_text())
                text = li.locator(".stmt-text").inner_text()
                cited = [lines.get(a.get_attribute("href").lstrip("#"), "") for a in li.locator("a.cite").all()]
                if cited and _supported_share(text, cited) >= 0.5:
                    grounded.append((heading.inner_text(), text))
        # some of BBIC's twenty headings are filled (not every one "Inget antecknat"), with statements whose cited
        # lines hold their content words
        assert len(filled) >= 2, filled
        assert len(grounded) >= 2 and len({h for h, _ in grounded}) >= 2, (filled, grounded)
        browser.close()
