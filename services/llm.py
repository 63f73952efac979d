"""The llm unit: serves the GGUF model through llama-cpp-python's OpenAI-compatible server.

It listens on loopback or a Unix socket only ([llm] host/port or socket); the web and the assistant
worker speak the OpenAI chat-completions protocol to it through appliance/llm_client.py, so IT can point
`llm.base_url` at another on-prem server (vLLM, Triton's OpenAI frontend, llama.cpp's own server) and
switch this unit off (`llm.serve = false`). The model is verified against the manifest before it is loaded.
The chat template is the one inside the GGUF file unless `llm.chat_format` names another.

Prompt cache: reading a transcript is the slow part on a CPU (tens of tokens per second), and every request
about one recording starts with the same system message and transcript (appliance/assistant/prompts.py). The
unit keeps the model's state after recent requests in RAM (`llm.prompt_cache_mb`, never on disk), so the next
question on the same recording reads only its own words. A cached state holds transcript content, so it is
dropped `llm.prompt_cache_minutes` after its last use by a timer, whatever else happens (`_AgedRamCache`).
Run: `appliance llm` or `python -m services.llm`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from appliance.config import Config, LlmConfig, load_config
from appliance.errors import ApplianceError
from appliance.platform import sdnotify
from models.store import verify_model

log = logging.getLogger(__name__)


def model_settings(llm: LlmConfig, model_path: Path) -> dict:
    """llama-cpp-python settings from the [llm] section (also used by bench/llm_overhead.py for the raw run)."""
    settings = {
        "model": str(model_path),
        "model_alias": llm.model,
        "n_ctx": llm.n_ctx,
        "n_gpu_layers": llm.n_gpu_layers,
        "seed": llm.seed,
        # llama.cpp's own logging (load info, timings) never contains prompts, but keep stderr quiet.
        "verbose": False,
    }
    if llm.chat_format:
        settings["chat_format"] = llm.chat_format
    # Generating a token is bound by memory bandwidth, reading a prompt by arithmetic: both get every core the
    # unit may use (llama-cpp-python's default would generate on half of them).
    threads = llm.n_threads or len(os.sched_getaffinity(0))
    settings["n_threads"] = threads
    settings["n_threads_batch"] = threads
    return settings


def _aged_ram_cache(capacity_bytes: int, max_age_seconds: float):
    """llama-cpp-python's RAM prompt cache, whose states are also dropped `max_age_seconds` after their last use
    (a timer thread; the library's own cache only evicts when it is full)."""
    from llama_cpp.llama_cache import LlamaRAMCache

    class AgedRamCache(LlamaRAMCache):
        def __init__(self) -> None:
            super().__init__(capacity_bytes)
            self._used: dict[tuple[int, ...], float] = {}
            self._lock = threading.RLock()
            threading.Thread(target=self._expire_forever, name="prompt-cache-expiry", daemon=True).start()

        def __getitem__(self, key):
            with self._lock:
                value = super().__getitem__(key)
                # the library moved the hit to the end; that key is now the most recently used
                self._used[next(reversed(self.cache_state))] = time.monotonic()
                return value

        def __contains__(self, key) -> bool:
            with self._lock:
                return super().__contains__(key)

        def __setitem__(self, key, value) -> None:
            # The library saves its whole logits buffer with every state (n_batch rows of the vocabulary: 300 MB
            # for a 150k-token vocabulary) without counting it. Restoring a state always evaluates the prompt's
            # last token again, which writes fresh logits, so one row (broadcast on restore) is all it needs.
            value.scores = value.scores[:1].copy()
            with self._lock:
                super().__setitem__(key, value)
                self._used[tuple(key)] = time.monotonic()
                self._used = {k: t for k, t in self._used.items() if k in self.cache_state}

        def expire(self, now: float | None = None) -> int:
            """Drop states unused for longer than the maximum age; returns how many."""
            now = time.monotonic() if now is None else now
            with self._lock:
                old = [k for k in self.cache_state if now - self._used.get(k, 0.0) > max_age_seconds]
                for k in old:
                    del self.cache_state[k]
                    self._used.pop(k, None)
            if old:
                log.info("prompt cache: %d state(s) expired", len(old))
            return len(old)

        def _expire_forever(self) -> None:
            while True:
                time.sleep(min(60.0, max_age_seconds / 4))
                self.expire()

    return AgedRamCache()


def build_app(cfg: Config):
    """The FastAPI app of llama-cpp-python's server, with the verified model (heavy imports deferred)."""
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    model_path = verify_model(cfg.paths.models, cfg.llm.model)
    server = ServerSettings(host=cfg.llm.host, port=cfg.llm.port,
                            # A new request must not cut off another user's streaming answer: queue instead.
                            interrupt_requests=False)
    app = create_app(server_settings=server, model_settings=[ModelSettings(**model_settings(cfg.llm, model_path))])
    if cfg.llm.prompt_cache_mb:
        install_prompt_cache(cfg.llm)
    return app


def install_prompt_cache(llm: LlmConfig):
    """Give the served model the age-bounded RAM prompt cache (the server's own `cache` setting has no age)."""
    from llama_cpp.server import app as server_app

    cache = _aged_ram_cache(llm.prompt_cache_mb << 20, llm.prompt_cache_minutes * 60)
    server_app._llama_proxy(llm.model).set_cache(cache)  # the one model create_app loaded
    return cache


def _prepare_socket(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_socket():
        path.unlink()  # left behind by a killed predecessor


def serve(cfg: Config) -> None:
    import uvicorn

    class _Server(uvicorn.Server):
        """Tells systemd (Type=notify) the unit is ready once the model is loaded and the socket listens."""

        async def startup(self, sockets=None) -> None:  # noqa: ANN001 - uvicorn's signature
            await super().startup(sockets=sockets)
            if not self.should_exit:
                # No loop of ours to watch: the watchdog thread catches a frozen process.
                sdnotify.ready(f"serving {cfg.llm.model}", alive=lambda: True)

    app = build_app(cfg)
    # No access log: paths only, but nothing here needs them and the unit stays quiet.
    kwargs = {"log_level": "warning", "access_log": False}
    if cfg.llm.socket is not None:
        _prepare_socket(cfg.llm.socket)
        log.info("llm serving %s on unix:%s", cfg.llm.model, cfg.llm.socket)
        config = uvicorn.Config(app, uds=str(cfg.llm.socket), **kwargs)
    else:
        log.info("llm serving %s on http://%s:%s", cfg.llm.model, cfg.llm.host, cfg.llm.port)
        config = uvicorn.Config(app, host=cfg.llm.host, port=cfg.llm.port, **kwargs)
    _Server(config).run()


def main(config_path: str | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = load_config(config_path)
        if not cfg.llm.serve:
            log.error("llm.serve is false: this box uses the model server at llm.base_url; not starting")
            return 2
        # llama-cpp-python's settings are pydantic BaseSettings: they would read MODEL, N_CTX, … from the
        # environment; the [llm] section is the only source, so drop such variables.
        for name in ("MODEL", "N_CTX", "N_GPU_LAYERS", "N_THREADS", "HOST", "PORT", "CONFIG_FILE"):
            os.environ.pop(name, None)
        # llama.cpp's OpenMP threads spin while they wait for each other; when the box's other units (Whisper)
        # want the same cores, spinning threads starve each other (generation fell from 2.2 to 0.3 tokens/s with
        # 2 threads on 2 busy cores; bench/assistant_latency.py). Waiting threads sleep instead; set before the
        # library loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        serve(cfg)
    except ApplianceError as exc:
        log.error("llm cannot start: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
