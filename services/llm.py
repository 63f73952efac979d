"""The llm unit: serves the GGUF model through llama-cpp-python's OpenAI-compatible server.

It listens on loopback or a Unix socket only ([llm] host/port or socket); the web and the assistant
worker speak the OpenAI chat-completions protocol to it through appliance/llm_client.py, so IT can point
`llm.base_url` at another on-prem server (vLLM, Triton's OpenAI frontend, llama.cpp's own server) and
switch this unit off (`llm.serve = false`). The model is verified against the manifest before it is loaded.
Run: `appliance llm` or `python -m services.llm`.
"""

from __future__ import annotations

import logging
import os
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
    if llm.n_threads:
        settings["n_threads"] = llm.n_threads
        settings["n_threads_batch"] = llm.n_threads
    return settings


def build_app(cfg: Config):
    """The FastAPI app of llama-cpp-python's server, with the verified model (heavy imports deferred)."""
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    model_path = verify_model(cfg.paths.models, cfg.llm.model)
    server = ServerSettings(host=cfg.llm.host, port=cfg.llm.port,
                            # A new request must not cut off another user's streaming answer: queue instead.
                            interrupt_requests=False)
    return create_app(server_settings=server, model_settings=[ModelSettings(**model_settings(cfg.llm, model_path))])


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
        serve(cfg)
    except ApplianceError as exc:
        log.error("llm cannot start: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
