"""The recording page with a 90-minute meeting (1 080 lines, three speakers, doubtful words): what it costs the server
and the browser, against the raw libraries in the same run (issue 15).

Server: `GET /recordings/<id>` through the whole app (sign-in session, access check and audit, transcript with edits
and speakers, doubtful words, the assistant's tabs, Jinja) against Jinja2 alone rendering the same lines as a bare
`<ol><li>time text</li></ol>`. Browser: headless Chromium loading the page (its CSS and JS from the app, the audio
answered empty) to the load event and its DOM size, against the same bare list given to Chromium directly; then the
time to scroll the transcript pane to its end and lay it out. Chromium is served by Playwright's request routing from
Flask's client, so no server process takes part in the figures.

Run: `.venv/bin/python bench/workspace_page.py [--minutes 90] [--runs 5]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jinja2  # noqa: E402
import pyotp  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from appliance.config import load_config  # noqa: E402
from appliance.platform.context import init_state  # noqa: E402
from appliance.recordings import folders, recordings  # noqa: E402
from appliance.users import accounts  # noqa: E402
from tests.conftest import make_tone  # noqa: E402
from tests.e2e_helpers import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.web_fixtures import CSRF_RE, SECRET_RE  # noqa: E402
from tests.workspace_data import store_meeting  # noqa: E402
from web import create_app  # noqa: E402
from web.views import clock_time  # noqa: E402

PASSWORD = "bänk-häst-batteri-häftapparat"  # noqa: S105 - a throwaway account in a temporary state dir
BARE = jinja2.Template("<!doctype html><html lang=sv><title>t</title><ol>{% for s in segments %}<li>"
                       "{{ clock(s.start) }} {{ s.text }}</li>{% endfor %}</ol></html>")
ORIGIN = "https://bench.invalid"


def signed_in_client(app):
    client = app.test_client()
    csrf = CSRF_RE.search(client.get("/login").text).group(1)
    client.post("/login", data={"csrf_token": csrf, "username": "bench", "password": PASSWORD})
    page = client.get("/enrol-totp").text
    secret = SECRET_RE.search(page).group(1).replace(" ", "")
    r = client.post("/enrol-totp", data={"csrf_token": CSRF_RE.search(page).group(1),
                                          "code": pyotp.TOTP(secret).now()})
    page = client.get(r.headers["Location"]).text
    client.post(r.headers["Location"], data={"csrf_token": CSRF_RE.search(page).group(1), "accept": "yes"})
    return client


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:7.1f} ms (min {min(values) * 1000:.1f})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=90)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = init_state(load_config(environ={"APPLIANCE_PATHS__STATE_DIR": f"{tmp}/state"}))
        with closing(ctx.connect()) as conn:
            user, _ = accounts.create_user(conn, "bench", ["caseworker"], password=PASSWORD)
            tone = make_tone(Path(tmp) / "tone.wav", 0.5)
            rid = recordings.create_from_upload(ctx, conn, user, title="Bänk", filename="t.wav",
                                                data=tone.read_bytes(), folder_id=folders.ensure_default(conn, user))
            conn.execute("DELETE FROM jobs")
            n = store_meeting(conn, rid, args.minutes)
            segments = recordings.transcript_segments(conn, rid)
        app = create_app(ctx)
        client = signed_in_client(app)
        path = f"/recordings/{rid}"

        page_t, bare_t = [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            html = client.get(path).data
            page_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            bare = BARE.render(segments=segments, clock=clock_time)
            bare_t.append(time.perf_counter() - t0)
        print(f"{n} lines ({args.minutes:g} minutes); page {len(html) / 1024:.0f} KiB, bare list "
              f"{len(bare.encode()) / 1024:.0f} KiB")
        print(f"server  page (whole app) {ms(page_t)} | bare Jinja2 {ms(bare_t)} | "
              f"ratio {statistics.median(page_t) / statistics.median(bare_t):.1f}x")

        def route(r):
            url = r.request.url.removeprefix(ORIGIN)
            if url.endswith("/audio"):
                r.fulfill(status=200, body=b"", content_type="audio/wav")
                return
            resp = client.get(url)
            r.fulfill(status=resp.status_code, body=resp.data, headers=dict(resp.headers))

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="sv-SE")
            context.route(f"{ORIGIN}/**", route)
            page = context.new_page()
            load, dom, scroll, bare_load, bare_dom = [], [], [], [], []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                page.goto(ORIGIN + path, wait_until="load")
                load.append(time.perf_counter() - t0)
                dom.append(page.evaluate("() => document.getElementsByTagName('*').length"))
                scroll.append(page.evaluate("""() => new Promise(done => {
                    const b = document.getElementById('transcript-body'), t0 = performance.now();
                    b.scrollTop = b.scrollHeight;
                    requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - t0))); })""")
                    / 1000)
                t0 = time.perf_counter()
                page.set_content(bare, wait_until="load")
                bare_load.append(time.perf_counter() - t0)
                bare_dom.append(page.evaluate("() => document.getElementsByTagName('*').length"))
            browser.close()
        ratio = statistics.median(load) / statistics.median(bare_load)
        print(f"browser page to load {ms(load)}, {statistics.median(dom):.0f} elements "
              f"({statistics.median(dom) / n:.1f} per line) | bare list {ms(bare_load)}, "
              f"{statistics.median(bare_dom):.0f} elements | ratio {ratio:.1f}x")
        print(f"browser scroll the transcript pane to its end and lay it out: {ms(scroll)}")


if __name__ == "__main__":
    main()
