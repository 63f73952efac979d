"""Issue 18, finding 9: no process of the box writes outside its state dir and tmpfs. The asr worker
(transcribing a real clip), the web unit (real gunicorn serving a sign-in) and the assistant worker run under
strace with an empty HOME; every file they open for writing, create, rename or make must lie in the state
dir, /dev, /proc or the temp dir (tmpfs / PrivateTmp on the box) — never in HOME (onnxruntime's telemetry
wrote ~/.cache/Microsoft/DeveloperTools/.onnxruntime/ from the asr process) nor in the code tree."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import pytest
import requests
import urllib3

from appliance.config import load_config
from appliance.platform.context import init_state
from appliance.recordings import recordings
from appliance.users import accounts
from tests.conftest import ROOT, free_port
from tests.test_hardening import CSRF_RE
from tests.web_fixtures import PASSWORD

# openat(AT_FDCWD, "/path", O_WRONLY|O_CREAT…) / creat / mkdir / rename(at) / link / symlink
_WRITE_OPEN = re.compile(r'\b(?:open|openat)\((?:AT_FDCWD|\d+), "([^"]+)", ([A-Z_|]+)')
_PATH_CALL = re.compile(r'\b(?:creat|mkdir|mkdirat|rename|renameat2?|link|symlink|unlink|unlinkat)'
                        r'\((?:AT_FDCWD, |\d+, )?"([^"]+)"')
_ALLOWED_SYSTEM = ("/dev/", "/proc/")


def _strace() -> str:
    path = shutil.which("strace")
    if path is None:
        pytest.fail("strace is missing: `apt-get install strace` (make test installs it)")
    return path


def written_paths(log: Path) -> set[str]:
    out = set()
    for line in log.read_text(errors="replace").splitlines():
        if "= -1" in line:  # failed calls wrote nothing
            continue
        m = _WRITE_OPEN.search(line)
        if m and re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND", m.group(2)):
            out.add(m.group(1))
            continue
        m = _PATH_CALL.search(line)
        if m:
            out.add(m.group(1))
    return out


def outside(paths: set[str], state_dir: Path, home: Path, cwd: Path) -> list[str]:
    tmp = os.path.realpath(tempfile.gettempdir())
    bad = []
    for p in paths:
        full = os.path.realpath(p if p.startswith("/") else os.path.join(cwd, p))
        if full.startswith(str(home)) or (not full.startswith(str(state_dir))
                                          and not full.startswith(_ALLOWED_SYSTEM)
                                          and not (full + "/").startswith(tmp + "/")
                                          and full not in ("/dev/null", "/dev/shm")):
            bad.append(full)
    return sorted(bad)


def assert_wrote_only_inside(log: Path, state: Path, home: Path) -> None:
    paths = written_paths(log)
    assert any(p.startswith(str(state)) for p in paths)  # the trace saw the process's own writes
    bad = outside(paths, state, home, ROOT)
    assert bad == [], "\n".join(bad)
    assert list(home.iterdir()) == []


@pytest.fixture
def box(tmp_path, model_store):
    home = tmp_path / "home"
    home.mkdir()
    state = tmp_path / "state"
    env = {**os.environ, "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1",
           "APPLIANCE_PATHS__STATE_DIR": str(state), "APPLIANCE_PATHS__MODELS_DIR": str(model_store),
           "APPLIANCE_ASR__POLL_SECONDS": "0.1"}
    env.pop("ORT_DISABLE_TELEMETRY", None)  # the product must set it itself
    app = init_state(load_config(environ=env))
    return app, env, state.resolve(), home.resolve()


def _traced(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([_strace(), "-f", "-qq", "-e", "trace=%file", "-o", str(log), *cmd], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _wait(pred, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.2)


def test_finding9_asr_worker_writes_only_to_state_dir_and_tmpfs(box, sv_clip, tmp_path):
    app, env, state, home = box
    with closing(app.connect()) as conn:
        user, _ = accounts.create_user(conn, "anna", ["caseworker"])
        rid = recordings.create_from_upload(app, conn, user, title="Samtal", filename=sv_clip.name,
                                            data=sv_clip.read_bytes())
    log = tmp_path / "asr.strace"
    proc = _traced([sys.executable, "-m", "services.asr"], env, log)
    try:
        def ready() -> bool:
            assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-2000:]
            with closing(app.connect()) as conn:
                return conn.execute("SELECT status FROM recordings WHERE id = ?", (rid,)).fetchone()[0] == "ready"
        _wait(ready, 240)
    finally:
        _stop(proc)
    assert_wrote_only_inside(log, state, home)


def test_finding9_web_unit_writes_only_to_state_dir_and_tmpfs(box, tmp_path):
    from provisioning.devrun import gunicorn_command

    app, env, state, home = box
    port = free_port()
    env = {**env, "APPLIANCE_WEB__PORT": str(port)}
    with closing(app.connect()) as conn:
        accounts.create_user(conn, "anna", ["caseworker"], password=PASSWORD)
    log = tmp_path / "web.strace"
    proc = _traced(gunicorn_command(load_config(environ=env)), env, log)
    base = f"https://127.0.0.1:{port}"
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    try:
        def up() -> bool:
            assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-2000:]
            try:
                return requests.get(base + "/healthz", verify=False, timeout=2).status_code == 200  # noqa: S501
            except requests.RequestException:
                return False
        _wait(up, 60)
        with requests.Session() as s:
            token = CSRF_RE.search(s.get(base + "/login", verify=False, timeout=10).text).group(1)  # noqa: S501
            r = s.post(base + "/login", data={"csrf_token": token, "username": "anna", "password": PASSWORD},
                       verify=False, allow_redirects=False, timeout=10)  # noqa: S501
            assert r.status_code == 303
            assert s.get(base + "/enrol-totp", verify=False, timeout=10).status_code == 200  # noqa: S501
    finally:
        _stop(proc)
    assert_wrote_only_inside(log, state, home)


def test_finding9_assistant_worker_writes_only_to_state_dir_and_tmpfs(box, tmp_path, llm_server):
    app, env, state, home = box
    env = {**env, "APPLIANCE_LLM__BASE_URL": llm_server, "APPLIANCE_ASSISTANT__POLL_SECONDS": "0.1"}
    log = tmp_path / "assistant.strace"
    proc = _traced([sys.executable, "-m", "services.assistant"], env, log)
    try:
        time.sleep(8)  # start, open the database, poll the queue a few times
        assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-2000:]
    finally:
        _stop(proc)
    assert_wrote_only_inside(log, state, home)
