"""Shared pieces of the end-to-end tests: `appliance run` in a subprocess (`appliance_running`: what
`make run` starts, on free ports, its log checked for personal data when it stops; the `running` fixture),
Chromium's path and flags, and the dev administrator's first sign-in (password, TOTP enrolment, usage
guidelines; tests/test_e2e.py walks the same steps with assertions of its own)."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import expect

from tests.conftest import free_port
from tests.llm_fixtures import SMALL_MODEL

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]
# Words the tests speak or type that must never reach a unit's log (personal data).
SECRET_WORDS = ("Anna", "socialsekreterare", "Hembesök")


class Appliance:
    """`appliance run` in a subprocess; collects its output to find the printed sign-in."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "provisioning.cli", "run"], cwd=ROOT,
                                     env={**os.environ, **env}, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float = 120) -> re.Match:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in list(self.lines):
                m = re.search(pattern, line)
                if m:
                    return m
            if self.proc.poll() is not None:
                raise AssertionError("appliance run exited:\n" + "".join(self.lines))
            time.sleep(0.2)
        raise AssertionError(f"no line matching {pattern!r}:\n" + "".join(self.lines))

    def dev_password(self) -> str:
        """The dev administrator's one-time password: not printed into this redirected output (issue 18,
        finding 9) but written to the 0600 file the output names."""
        path = Path(self.wait_for(r"det står i (\S+)").group(1))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        password = path.read_text(encoding="utf-8").strip()
        assert password and not any(password in line for line in self.lines)
        return password

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def wait_http(port: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("web did not start listening")


@pytest.fixture
def running(tmp_path, model_store):
    """`appliance run` as `make run` starts it (its own llm unit too): (base URL, dev password, Appliance)."""
    with appliance_running(tmp_path, model_store, APPLIANCE_WEB__WORKERS="2", **llm_port_env()) as r:
        yield r.base, r.password, r.app


def llm_port_env() -> dict[str, str]:
    """`appliance run` also starts the llm unit: give it a free port so parallel runs never collide."""
    llm_port = free_port()
    return {"APPLIANCE_LLM__PORT": str(llm_port), "APPLIANCE_LLM__BASE_URL": f"http://127.0.0.1:{llm_port}/v1"}


@dataclass(frozen=True)
class Running:
    base: str
    password: str
    app: Appliance
    env: dict[str, str]


@contextmanager
def appliance_running(tmp_path: Path, model_store: Path, *, secret_words: tuple[str, ...] = SECRET_WORDS,
                      no_tracebacks: bool = False, **env: str) -> Iterator[Running]:
    """`appliance run` with its own state dir, the test model store and a free web port (`env` adds or
    overrides APPLIANCE_* settings); stopped afterwards, and then its log holds none of `secret_words`."""
    port = free_port()
    full = {"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "var"), "APPLIANCE_PATHS__MODELS_DIR": str(model_store),
            "APPLIANCE_WEB__PORT": str(port), "APPLIANCE_WEB__WORKERS": "1", "APPLIANCE_ASR__POLL_SECONDS": "0.2",
            # the small model unless a test says otherwise (test_e2e_assistant.py judges the instruct model's text)
            **SMALL_MODEL, **env}
    app = Appliance(full)
    try:
        password = app.dev_password()
        wait_http(port)
        yield Running(f"https://127.0.0.1:{port}", password, app, full)
    finally:
        app.stop()
    log = "".join(app.lines)
    for word in secret_words:  # no transcript, title or question text in any unit's log
        assert word not in log, f"{word!r} leaked into the service logs"
    if no_tracebacks:
        assert "Traceback" not in log, log



def until(page, expression: str, timeout: float = 20) -> None:
    """Wait until a JS expression is true, polled from Python: page.wait_for_function evaluates a string inside the
    page once its first check fails, which the app's CSP (no 'unsafe-eval') refuses."""
    end = time.monotonic() + timeout
    while not page.evaluate(f"() => Boolean({expression})"):
        assert time.monotonic() < end, f"never true within {timeout} s: {expression}"
        time.sleep(0.1)


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


def upload_in_browser(page, base: str, title: str, clip: Path) -> None:
    """Upload a recording through the upload form, as a caseworker does (the page then goes to the recording)."""
    page.goto(base + "/upload")
    page.locator("input[name=title]").fill(title)
    page.locator("input[type=file]").set_input_files(str(clip))
    page.locator("main form button[type=submit]").click()
