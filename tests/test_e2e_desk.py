"""End to end, a desk microphone: `appliance run` (gunicorn with TLS, the asr process with real Whisper and the
recorder process capturing with `arecord`) and headless Chromium. The box's "microphone" is the ALSA
file-plugin device of tests/test_recorder.py, fed Swedish espeak speech. New recording → desk source →
consent → record, pause, resume, stop from the recording page; the final transcript has the spoken words and
the pause, and the words said during the pause are not in the audio.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import recognised, speak_swedish
from tests.e2e_helpers import CHROMIUM, CHROMIUM_ARGS, appliance_running, first_sign_in
from tests.test_recorder import BLOCK, DEVICE, PART1, PART2, Microphone, pcm_of, tone

pytestmark = pytest.mark.e2e


@pytest.fixture
def running(tmp_path, model_store):
    mic = Microphone(tmp_path, idle_silence=True)
    try:
        with appliance_running(tmp_path, model_store, secret_words=("Anna", "socialsekreterare", "Kontorssamtal"),
                               no_tracebacks=True, APPLIANCE_RECORDER__DEVICE_PATTERN=f"^{DEVICE}$",
                               APPLIANCE_RECORDER__POLL_SECONDS="0.1", APPLIANCE_RECORDER__HEARTBEAT_SECONDS="0.5",
                               APPLIANCE_RECORDING__MIN_FREE_MB="0", **mic.env) as r:
            yield r.base, r.password, mic
    finally:
        mic.close()


def test_desk_microphone_record_pause_resume_stop_in_the_browser(running, tmp_path):
    base, password, mic = running
    part1, part2 = pcm_of(speak_swedish(PART1, tmp_path / "p1")), pcm_of(speak_swedish(PART2, tmp_path / "p2"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(ignore_https_errors=True, locale="sv-SE").new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        first_sign_in(page, base, password)

        page.goto(base + "/recordings/new")
        page.get_by_label("Titel").fill("Kontorssamtal")
        page.get_by_label(re.compile("En bordsmikrofon")).check()
        expect(page.get_by_label("Bordsmikrofon", exact=True)).to_have_value(DEVICE, timeout=20_000)
        page.get_by_label("Klienten har informerats om inspelningen och samtycker till den.").check()
        page.get_by_role("button", name="Starta inspelningen").click()
        expect(page).to_have_url(re.compile(r"/recordings/[0-9a-f]+"))
        desk = page.locator("#desk-mic")
        expect(desk).to_contain_text("Spelar in", timeout=20_000)

        mic.say(part1)
        mic.drained()
        time.sleep(1.5)  # the recorder's last chunk of part 1
        desk.get_by_role("button", name="Pausa").click()
        expect(page.locator("#desk-mic")).to_contain_text("Pausad", timeout=20_000)
        mic.say(tone(1.5, 1000))  # said during the pause
        mic.drained()
        time.sleep(0.5)
        page.locator("#desk-mic").get_by_role("button", name="Återuppta").click()
        expect(page.locator("#desk-mic")).to_contain_text("Spelar in", timeout=20_000)
        mic.say(part2)
        mic.drained()
        time.sleep(1.5)
        page.locator("#desk-mic").get_by_role("button", name="Stoppa inspelningen").click()

        # The page follows by itself until the final transcript is there.
        segments = page.locator("[data-start]")
        expect(segments.first).to_be_visible(timeout=180_000)
        recognised(page.locator("#transcript").inner_text())
        expect(page.locator("[data-mark=pause]")).to_have_count(1)
        audio = page.evaluate("""async () => {
            const r = await fetch(document.querySelector('audio').src, {credentials: 'same-origin'});
            return Array.from(new Uint8Array(await r.arrayBuffer()));
        }""")
        pcm = bytes(audio)[44:]
        assert part1[:BLOCK] in pcm and part2[:BLOCK] in pcm
        assert tone(1.5, 1000)[BLOCK:2 * BLOCK] not in pcm
        assert not errors, errors  # no CSP violation or script error on the way
        browser.close()
