"""The real llama.cpp server for LLM tests (a pytest plugin registered in tests/conftest.py).

`llm_server` starts the `llm` unit (services/llm.py: llama-cpp-python's OpenAI-compatible server with the
embedded Gemma 270M model, small and fast: it proves the machinery) ONCE per test session on a free loopback port
and yields its base URL. `instruct_llm_server` does the same with the embedded instruction-tuned model the
appliance serves by default (Qwen2.5-Coder 1.5B Instruct, chat template from the GGUF), for the tests that judge
what the drafts say (tests/test_e2e_assistant.py); it is slower, so few tests use it.
`llm_ctx` is an initialised appliance whose [llm] base_url points at it; a web test module uses it with
`@pytest.fixture def ctx(llm_ctx): return llm_ctx`. `dead_llm_url` is a loopback URL nothing listens on,
`silent_llm_url` a server that accepts connections and never answers (the "slow / hung model" case).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port

LLM_N_CTX = 4096
START_TIMEOUT = 120
# The fast model most LLM tests use; it has no chat template of its own, hence the gemma format.
SMALL_MODEL = {"APPLIANCE_LLM__MODEL": "gemma-3-270m-q4_k_m", "APPLIANCE_LLM__CHAT_FORMAT": "gemma"}
# The appliance's default model (config defaults: the instruct model with the template inside its GGUF).
INSTRUCT_MODEL = {"APPLIANCE_LLM__MODEL": "qwen2.5-coder-1.5b-instruct-q4_k_m", "APPLIANCE_LLM__CHAT_FORMAT": ""}


def llm_env(base_url: str, model: dict[str, str] = SMALL_MODEL, **extra: str) -> dict[str, str]:
    """Config overrides that point the appliance at `base_url`, serving `model` (short timeouts keep failing tests
    fast)."""
    return {"APPLIANCE_LLM__BASE_URL": base_url, "APPLIANCE_LLM__CONNECT_TIMEOUT_SECONDS": "3",
            "APPLIANCE_LLM__READ_TIMEOUT_SECONDS": "60", **model, **extra}


def _wait_ready(url: str, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llm server exited with {proc.returncode}:\n{log_path.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/models", timeout=2) as resp:
                if json.loads(resp.read()).get("data"):
                    return
        except OSError:
            pass
        time.sleep(0.3)
    proc.kill()
    pytest.fail(f"llm server did not answer within {START_TIMEOUT} s:\n{log_path.read_text(errors='replace')[-3000:]}")


def _serve(model_store: Path, tmp: Path, model: dict[str, str], n_ctx: int):
    """Start the llm unit for `model` on a free port; yields its base URL, stops it afterwards."""
    port = free_port()
    log_path = tmp / "llm.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env.update({"APPLIANCE_PATHS__STATE_DIR": str(tmp / "state"), "APPLIANCE_PATHS__MODELS_DIR": str(model_store),
                "APPLIANCE_LLM__PORT": str(port), "APPLIANCE_LLM__N_CTX": str(n_ctx), **model,
                "PYTHONUNBUFFERED": "1"})
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "services.llm"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(url, proc, log_path)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def llm_server(model_store, tmp_path_factory) -> str:
    """Base URL (http://127.0.0.1:PORT/v1) of the real llama.cpp server with the small model, started once."""
    yield from _serve(model_store, tmp_path_factory.mktemp("llm"), SMALL_MODEL, LLM_N_CTX)


@pytest.fixture(scope="session")
def instruct_llm_server(model_store, tmp_path_factory) -> str:
    """Base URL of the real llama.cpp server with the appliance's default instruct model, started once."""
    if not (model_store / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf").exists():
        pytest.fail(f"The instruct model is not in {model_store}: run `make test` (it installs the embedded models) "
                    "or `appliance models install-embedded`")
    yield from _serve(model_store, tmp_path_factory.mktemp("llm-instruct"), INSTRUCT_MODEL, 8192)


@pytest.fixture
def llm_ctx(tmp_path, llm_server):
    """An initialised appliance (fresh state dir) whose [llm] base_url is the session's llama.cpp server."""
    from appliance.config import load_config
    from appliance.platform.context import init_state

    return init_state(load_config(environ={"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "state"),
                                           **llm_env(llm_server)}))


@pytest.fixture
def dead_llm_url() -> str:
    """A loopback base URL where nothing listens (connection refused at once)."""
    return f"http://127.0.0.1:{free_port()}/v1"


@pytest.fixture
def silent_llm_url():
    """A loopback server that accepts connections and reads requests but never answers (a hung model)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)  # keep it open, say nothing

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}/v1"
    stop.set()
    thread.join()
    for c in held:
        c.close()
    srv.close()
