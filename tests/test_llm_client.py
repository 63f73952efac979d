"""The OpenAI chat-completions client against the real llama.cpp server (the `llm` unit), and its failures:
server down (refused), server hung (accepts, never answers), Unix socket."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from appliance.assistant.llm_client import LlmClient, LlmUnavailable
from appliance.config import load_config
from tests.conftest import ROOT
from tests.llm_fixtures import SMALL_MODEL, llm_env

HI = [{"role": "user", "content": "Berätta kort om Stockholm."}]


def client(url: str, **extra: str) -> LlmClient:
    return LlmClient(load_config(environ=llm_env(url, **extra)).llm)


def test_complete_and_models(llm_server):
    c = client(llm_server)
    assert c.models() == ["gemma-3-270m-q4_k_m"]
    out = c.complete(HI, max_tokens=12, temperature=0)
    assert out.text.strip()
    assert out.completion_tokens >= 1
    assert out.first_token_seconds is not None and out.first_token_seconds <= out.seconds


def test_stream_yields_pieces_in_order(llm_server):
    c = client(llm_server)
    pieces = list(c.stream(HI, max_tokens=12, temperature=0))
    assert len(pieces) >= 3  # token by token, not one blob
    # Same seed and temperature 0: streaming and the whole answer are the same text.
    assert "".join(pieces) == c.complete(HI, max_tokens=12, temperature=0).text


def test_response_format_schema_is_enforced(llm_server):
    points = {"type": "array", "items": {"type": "string", "maxLength": 40}, "minItems": 1, "maxItems": 2}
    schema = {"type": "object", "properties": {"rubrik": {"const": "Hälsa"}, "punkter": points},
              "required": ["rubrik", "punkter"]}
    out = client(llm_server).complete(HI, max_tokens=120, response_format={"type": "json_object", "schema": schema})
    data = json.loads(out.text)
    assert data["rubrik"] == "Hälsa" and 1 <= len(data["punkter"]) <= 2


def test_server_down_is_a_clear_error_at_once(dead_llm_url):
    t0 = time.monotonic()
    with pytest.raises(LlmUnavailable, match="Språkmodellen svarar inte"):
        client(dead_llm_url).complete(HI)
    with pytest.raises(LlmUnavailable):
        list(client(dead_llm_url).stream(HI))
    assert time.monotonic() - t0 < 5


def test_hung_server_times_out(silent_llm_url):
    t0 = time.monotonic()
    with pytest.raises(LlmUnavailable, match="i tid"):
        client(silent_llm_url, APPLIANCE_LLM__READ_TIMEOUT_SECONDS="1").complete(HI)
    assert time.monotonic() - t0 < 5


def test_unix_socket(model_store, tmp_path):
    """The llm unit can listen on a Unix socket only; the client reaches it with base_url unix:/PATH."""
    sock = tmp_path / "run" / "llm.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env.update({"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "state"), "APPLIANCE_PATHS__MODELS_DIR": str(model_store),
                "APPLIANCE_LLM__SOCKET": str(sock), "APPLIANCE_LLM__N_CTX": "1024", **SMALL_MODEL})
    log = tmp_path / "llm.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.llm"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        c = client(f"unix:{sock}")
        deadline = time.monotonic() + 60
        while True:
            try:
                assert c.models() == ["gemma-3-270m-q4_k_m"]
                break
            except LlmUnavailable:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        assert c.complete(HI, max_tokens=5).text
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_llm_unit_refuses_a_lan_address(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env.update({"APPLIANCE_PATHS__STATE_DIR": str(tmp_path), "APPLIANCE_LLM__HOST": "0.0.0.0"})  # noqa: S104 (refused)
    r = subprocess.run([sys.executable, "-m", "services.llm"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert "loopback" in r.stderr


def test_doctor_checks_the_model_server(llm_server, dead_llm_url, tmp_path):
    from provisioning.doctor import check_llm

    ok = check_llm(load_config(environ=llm_env(llm_server)))
    assert ok.ok and not ok.warning and "gemma-3-270m-q4_k_m" in ok.message
    down = check_llm(load_config(environ=llm_env(dead_llm_url)))
    assert down.warning and "does not answer" in down.message and "appliance-llm" in down.hint
    wrong = check_llm(load_config(environ=llm_env(llm_server, APPLIANCE_LLM__MODEL="annan-modell")))
    assert wrong.warning and "not annan-modell" in wrong.message


def test_prompt_cache_keeps_one_logits_row_and_forgets_old_states():
    """The llm unit's prompt cache (services/llm.py): a saved state costs its KV cells, not the library's whole
    logits buffer, and a state unused for longer than the maximum age is dropped (transcript content does not
    linger in memory)."""
    import numpy as np
    from llama_cpp.llama import LlamaState

    from services.llm import _aged_ram_cache

    cache = _aged_ram_cache(capacity_bytes=1 << 20, max_age_seconds=60)

    def state(n: int) -> LlamaState:
        return LlamaState(input_ids=np.arange(n, dtype=np.intc), scores=np.ones((512, 1000), dtype=np.single),
                          n_tokens=n, llama_state=b"\0" * 1000, llama_state_size=1000, seed=1)

    cache[(1, 2, 3)] = state(3)
    assert cache[(1, 2, 3, 4)].scores.shape == (1, 1000)  # longest prefix found; one row kept
    cache[(7, 8)] = state(2)
    now = time.monotonic()
    assert cache.expire(now) == 0 and (7, 8) in cache
    assert cache.expire(now + 61) == 2 and (7,) not in cache and (1, 2) not in cache
    for i in range(2000):  # the byte budget still holds (1 MiB of 1000-byte states)
        cache[(i, i)] = state(2)
    assert cache.cache_size <= 1 << 20
