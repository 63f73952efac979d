"""The office browser's side of tests/test_box.py, run in a network namespace the test made (an office PC on the
box's LAN): enrol a caseworker from her one-time link, upload a recording over HTTPS (the office certificate
checked against the office CA), wait for the asr unit's transcript. Prints one JSON object.

    python tests/box_client.py BASE_URL CA_FILE INVITE_PATH AUDIO_FILE TITLE
"""

from __future__ import annotations

import json
import re
import sys
import time

import pyotp
import requests
from urllib3.util.retry import Retry

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SECRET = re.compile(r'id="totp-secret"[^>]*>([^<]+)<')
PASSWORD = "Ett långt och bra lösenord 42!"  # noqa: S105 - a throwaway account in a throwaway container


def csrf(page: str) -> str:
    return CSRF.search(page).group(1)


def main(base: str, ca: str, invite: str, audio: str, title: str) -> dict:
    s = requests.Session()
    s.verify = ca  # the office CA: the box must present the certificate IT installed
    s.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would replace it
    # A poll can meet a keep-alive connection the server just closed (gunicorn's 2 s keep-alive): retry GETs.
    s.mount("https://", requests.adapters.HTTPAdapter(max_retries=Retry(total=3, allowed_methods=["GET"],
                                                                        backoff_factor=0.2)))
    page = s.get(base + invite, timeout=30)
    r = s.post(base + invite, data={"csrf_token": csrf(page.text), "password": PASSWORD, "password2": PASSWORD},
               allow_redirects=False, timeout=30)
    assert r.status_code == 303, (r.status_code, r.text[:500])
    page = s.get(base + "/enrol-totp", timeout=30).text
    secret = SECRET.search(page).group(1).replace(" ", "")
    r = s.post(base + "/enrol-totp", data={"csrf_token": csrf(page), "code": pyotp.TOTP(secret).now()},
               allow_redirects=False, timeout=30)
    assert r.status_code == 303, (r.status_code, r.text[:500])
    if "/guidelines" in r.headers["Location"]:
        page = s.get(base + r.headers["Location"] if r.headers["Location"].startswith("/") else r.headers["Location"],
                     timeout=30).text
        r = s.post(base + "/guidelines", data={"csrf_token": csrf(page), "accept": "yes"}, allow_redirects=False,
                   timeout=30)
        assert r.status_code == 303, (r.status_code, r.text[:500])
    page = s.get(base + "/upload", timeout=30).text
    with open(audio, "rb") as f:
        r = s.post(base + "/upload", data={"csrf_token": csrf(page), "title": title},
                   files={"file": ("samtal.wav", f, "audio/wav")}, allow_redirects=False, timeout=120)
    assert r.status_code == 303, (r.status_code, r.text[:500])
    rid = r.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    end = time.monotonic() + 300
    html = ""
    while time.monotonic() < end:
        html = s.get(f"{base}/recordings/{rid}", timeout=30).text
        # Segments are shown while the job still runs; the transcript is whole once the recording is ready.
        if 'data-status="ready"' in html or 'data-status="failed"' in html:
            break
        time.sleep(2)
    # A line holds <mark class="doubt"> around words Whisper doubted: the line is its text without the tags.
    lines = [re.sub(r"<[^>]+>", "", line) for line in re.findall(r'<span class="seg-text"[^>]*>(.*?)</span>', html)]
    footer = re.search(r'class="gallringsbeslut">([^<]*)<', html)
    return {"recording": rid, "page": html, "lines": lines, "footer": footer.group(1) if footer else None}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:6])))
