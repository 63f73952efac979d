"""End to end, the browser dictaphone: `appliance run` (gunicorn with TLS + the asr process + real Whisper),
headless Chromium with a fake microphone playing a Swedish espeak WAV. Consent, record, pause, resume, stop;
the live transcript appears while recording; the final transcript has the spoken words and the pause. Crash
tests: kill -9 of the asr and web processes mid-recording (the supervisor restarts them, the browser retries)
and a browser killed mid-recording (finished from the recording's page): every acknowledged chunk is in the
final recording.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from appliance.config import load_config
from appliance.platform.context import open_appliance
from tests.conftest import recognised, speak_swedish
from tests.e2e_helpers import CHROMIUM, CHROMIUM_ARGS, appliance_running, first_sign_in

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def mic_wav(tmp_path_factory) -> Path:
    """What the fake microphone plays (in a loop): Swedish speech with pauses between sentences."""
    d = tmp_path_factory.mktemp("mic")
    parts = [speak_swedish(t, d / f"p{i}") for i, t in enumerate((
        "Hej, jag heter Anna och jag arbetar som socialsekreterare.",
        "Vi ska prata om barnets skola och familjens ekonomi.",
        "Hej, jag heter Anna. Vi ska prata om familjen."))]
    out = d / "mic.wav"
    # speech, 1.5 s of silence, speech … at 48 kHz (what a sound card gives the browser)
    padded = []
    for part in parts:
        padded.append(part.with_name(part.stem + "_p.wav"))
        subprocess.run(["sox", str(part), "-r", "48000", str(padded[-1]), "pad", "0", "1.5"], check=True)
    subprocess.run(["sox", *map(str, padded), str(out)], check=True)
    return out


@pytest.fixture
def running(tmp_path, model_store):
    with appliance_running(tmp_path, model_store, APPLIANCE_ASR__LEASE_SECONDS="4",
                           APPLIANCE_RECORDING__CHUNK_SECONDS="1.5") as r:
        yield r.base, r.password, r.app, r.env


def _browser(p, mic: Path):
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + [
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}"])



def _new_recording(page, base: str) -> str:
    page.goto(base + "/recordings/new")
    page.get_by_label("Titel").fill("Hembesök")
    page.get_by_label("Antal talare (valfritt)").fill("2")
    page.get_by_role("button", name="Starta inspelningen").click()
    expect(page).to_have_url(re.compile(r"/recordings/new$"))  # the consent box is required: nothing started
    page.get_by_label("Klienten har informerats om inspelningen och samtycker till den.").check()
    page.get_by_role("button", name="Starta inspelningen").click()
    expect(page).to_have_url(re.compile(r"/recordings/[0-9a-f]+$"))
    return page.url.rsplit("/", 1)[1]


def _elapsed(page) -> int:
    m, s = page.locator("[data-rec-elapsed]").inner_text().split(":")[-2:]
    return int(m) * 60 + int(s)


def _wait_elapsed(page, seconds: int, timeout: float = 60_000) -> None:
    try:
        page.wait_for_function(
            "s => { const t = document.querySelector('[data-rec-elapsed]').textContent.split(':');"
            " return parseInt(t[t.length - 2]) * 60 + parseInt(t[t.length - 1]) >= s; }", arg=seconds,
            timeout=timeout)
    except Exception as exc:
        state = page.locator("[data-rec-state]").inner_text()
        error = page.locator("[data-rec-error]").inner_text()
        raise AssertionError(f"recorded time stuck at {_elapsed(page)} s (state {state!r}, error {error!r})") from exc


def _db(env):
    return open_appliance(load_config(environ=env)).connect()


def _child(pid: int, needle: str) -> int:
    """The supervisor's child process whose command line contains `needle`."""
    text = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    for line in text.splitlines():
        if needle in line:
            return int(line.split()[0])
    raise AssertionError(f"no child with {needle!r}: {text}")


def test_dictaphone_consent_pause_crashes_stop(running, mic_wav):
    base, password, app, env = running
    with sync_playwright() as p:
        browser = _browser(p, mic_wav)
        page = browser.new_context(ignore_https_errors=True, locale="sv-SE").new_page()
        first_sign_in(page, base, password)

        # The leaflet for the client: plain Swedish, printable.
        page.goto(base + "/recordings/new")
        href = page.get_by_role("link", name="Öppna informationsbladet till klienten").get_attribute("href")
        page.goto(base + href)
        expect(page.get_by_role("heading", name="Vi vill spela in vårt samtal")).to_be_visible()

        rid = _new_recording(page, base)
        page.get_by_role("button", name="Starta mikrofonen").click()
        expect(page.locator("[data-rec-state]")).to_have_text("Spelar in")
        page.wait_for_function("() => document.querySelector('[data-rec-level]').value > 0.01", timeout=20_000)
        # The live transcript shows finished speech while the recording goes on.
        expect(page.locator("#live-transcript .live-seg").first).to_be_visible(timeout=90_000)
        conn = _db(env)
        assert conn.execute("SELECT status FROM recordings WHERE id = ?", (rid,)).fetchone()[0] == "recording"

        # kill -9 the asr worker and the web server mid-recording; the supervisor restarts them and the
        # browser retries its pieces until they are acknowledged.
        os.kill(_child(app.proc.pid, "services.asr"), signal.SIGKILL)
        os.kill(_child(app.proc.pid, "gunicorn"), signal.SIGKILL)
        _wait_elapsed(page, _elapsed(page) + 6)

        page.get_by_role("button", name="Pausa").click()
        expect(page.locator("[data-rec-state]")).to_have_text("Pausad")
        paused_at = _elapsed(page)
        page.wait_for_timeout(2500)
        assert _elapsed(page) == paused_at  # nothing is recorded while paused
        page.get_by_role("button", name="Fortsätt").click()
        _wait_elapsed(page, paused_at + 9)
        recorded = _elapsed(page)
        page.get_by_role("button", name="Stoppa inspelningen").click()
        expect(page.locator("[data-rec-state]")).to_have_text(re.compile("stoppad"))

        # The final transcript (the page reloads itself): spoken words, the pause, the audio plays.
        segments = page.locator("#transcript [data-start]")
        expect(segments.first).to_be_visible(timeout=60_000)
        expect(page.locator("#transcript [data-mark=pause]")).to_have_count(1)
        expect(page.locator("#transcript [data-mark=gap]")).to_have_count(0)  # every piece arrived
        recognised(page.locator("#transcript").inner_text())
        page.wait_for_function("() => document.querySelector('audio').readyState >= 1", timeout=20_000)
        duration = page.locator("audio").evaluate("a => a.duration")
        assert recorded - 2 <= duration <= recorded + 3
        row = conn.execute("SELECT status, duration, speakers_hint FROM recordings WHERE id = ?", (rid,)).fetchone()
        assert row["status"] == "ready" and row["speakers_hint"] == 2
        marks = [r[0] for r in conn.execute("SELECT kind FROM live_marks WHERE recording_id = ? ORDER BY seq, id",
                                            (rid,))]
        assert marks == ["pause", "resume", "stop"]
        page.screenshot(path=str(Path(os.environ.get("E2E_SCREENSHOT_DIR", "/tmp")) / "e2e-live.png"),
                        full_page=True)
        browser.close()


def _kill_browser(mic: Path) -> None:
    """kill -9 of the Chromium processes this test launched (found by their unique fake-microphone file)."""
    out = subprocess.run(["pgrep", "-f", f"--use-file-for-fake-audio-capture={mic}"], capture_output=True, text=True)
    for pid in map(int, out.stdout.split()):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_browser_killed_mid_recording_is_finished_from_its_page(running, mic_wav):
    base, password, app, env = running
    with sync_playwright() as p:
        browser = _browser(p, mic_wav)
        context = browser.new_context(ignore_https_errors=True, locale="sv-SE")
        page = context.new_page()
        first_sign_in(page, base, password)
        signed_in = context.storage_state()
        rid = _new_recording(page, base)
        page.get_by_role("button", name="Starta mikrofonen").click()
        _wait_elapsed(page, 16)  # two sentences of the fake microphone's speech, whatever its start-up delay
        _kill_browser(mic_wav)
        with contextlib.suppress(Exception):  # it is dead already
            browser.close()

    conn = _db(env)
    acked = dict(conn.execute("SELECT seq, samples FROM live_chunks WHERE recording_id = ?", (rid,)).fetchall())
    assert len(acked) >= 3
    assert conn.execute("SELECT status FROM recordings WHERE id = ?", (rid,)).fetchone()[0] == "recording"
    # Later, from another browser with the same sign-in: the recording waits on its page; finish it there.
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(ignore_https_errors=True, locale="sv-SE", storage_state=signed_in).new_page()
        page.goto(base + f"/recordings/{rid}")
        expect(page.get_by_role("heading", name="Inspelning pågår")).to_be_visible()
        page.get_by_role("button", name="Avsluta inspelningen").click()
        try:
            expect(page.locator("#transcript [data-start]").first).to_be_visible(timeout=90_000)
        except AssertionError as exc:  # seen once in five runs on a loaded box: say what the services logged
            raise AssertionError("no final transcript; service log tail:\n" + "".join(app.lines[-60:])) from exc
        recognised(page.locator("#transcript").inner_text(), minimum=2)
        browser.close()
    row = conn.execute("SELECT duration FROM recordings WHERE id = ?", (rid,)).fetchone()
    assert row["duration"] * 16000 >= sum(acked.values())  # every acknowledged chunk is in the final recording
    assert conn.execute("SELECT count(*) FROM live_marks WHERE recording_id = ? AND kind = 'gap'",
                        (rid,)).fetchone()[0] == 0
