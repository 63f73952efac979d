"""Backends behind the ports in `appliance.ports`, plus the model manifest and store.

Transcriber backends register themselves by config name (``asr.backend``) with
`register_transcriber`, diarization backends (``diarization.backend``) with `register_diarizer`;
`load_transcriber` verifies a local model against the manifest first, so a model whose files do not match is
never handed to a library. Server-backed transcribers (Triton, Riva) have no local model (``kinds=()``): the
server holds it, and they only make a client (no connection until the first request, so the asr unit starts
while the server is down). Backend modules keep their heavy imports (faster_whisper, ctranslate2, torch,
...) inside functions, so discovering them is cheap.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.config import AsrConfig, DiarizationConfig
from appliance.errors import ModelError
from appliance.ports import Diarizer, Transcriber
from models.store import get_spec, verify_model

log = logging.getLogger(__name__)

# onnxruntime (faster-whisper's Silero VAD) writes a device id and a telemetry database to
# ~/.cache/Microsoft/DeveloperTools/.onnxruntime/ when it is imported, unless this is set first; nothing of
# the box is written outside its state dir (issue 18, finding 9). Every ML import goes through this package.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
# numba (librosa, under Resemblyzer) caches compiled functions in __pycache__ beside the installed package;
# compiled code only, kept in the temp dir (the unit's PrivateTmp on a box), never in the code tree.
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"samtalsstod-numba-{os.getuid()}"))

TranscriberFactory = Callable[[Path | None, AsrConfig], Transcriber]
"""Builds a transcriber from a verified model path (None for a server-backed one) and the asr config."""

# Modules in this package that are not backends and need not be imported to discover backends.
_NOT_BACKENDS = {"store"}


@dataclass(frozen=True)
class _Backend:
    factory: TranscriberFactory
    kinds: tuple[str, ...]  # model kinds (manifest `kind`) this backend can load; () : served elsewhere


_TRANSCRIBERS: dict[str, _Backend] = {}


def register_transcriber(
    name: str, kinds: tuple[str, ...] = ("whisper-ct2",)
) -> Callable[[TranscriberFactory], TranscriberFactory]:
    """Class/function decorator: make a transcriber backend available under config name `name`
    (`kinds=()`: a client of a server that holds the model, no local model to verify)."""

    def decorator(factory: TranscriberFactory) -> TranscriberFactory:
        if name in _TRANSCRIBERS and _TRANSCRIBERS[name].factory is not factory:
            raise ValueError(f"transcriber backend {name!r} registered twice")
        _TRANSCRIBERS[name] = _Backend(factory, kinds)
        return factory

    return decorator


def _discover() -> None:
    """Import every backend module in this package so its decorators run (cheap: imports are deferred)."""
    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in _NOT_BACKENDS and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


def transcriber_backends() -> list[str]:
    _discover()
    return sorted(_TRANSCRIBERS)


def load_transcriber(asr_config: AsrConfig, store_dir: Path) -> Transcriber:
    """The configured backend: a local model verified against the manifest and loaded, or a server's client."""
    if asr_config.backend not in _TRANSCRIBERS:
        _discover()
    backend = _TRANSCRIBERS.get(asr_config.backend)
    if backend is None:
        raise ModelError(f"Unknown transcription backend {asr_config.backend!r}; "
                         f"available: {sorted(_TRANSCRIBERS)}")
    if not backend.kinds:
        log.info("transcriber %s: a client of its server (no local model)", asr_config.backend)
        return backend.factory(None, asr_config)
    spec = get_spec(asr_config.model)
    if spec.kind not in backend.kinds:
        raise ModelError(f"Model {spec.name} is a {spec.kind} model; backend {asr_config.backend} "
                         f"loads {', '.join(backend.kinds)}")
    model_path = verify_model(Path(store_dir), asr_config.model)
    log.info("loading transcriber %s with model %s (%s, %s)", asr_config.backend, spec.name,
             asr_config.device, asr_config.compute_type)
    return backend.factory(model_path, asr_config)


DiarizerFactory = Callable[[DiarizationConfig, Path], Diarizer]  # (config, the model store)
"""Builds a loaded diarizer from the diarization config (its weights ship inside a Python package, which the
backend checks against a pinned SHA-256 before loading)."""

_DIARIZERS: dict[str, DiarizerFactory] = {}


def register_diarizer(name: str) -> Callable[[DiarizerFactory], DiarizerFactory]:
    """Class/function decorator: make a diarization backend available under config name `name`."""

    def decorator(factory: DiarizerFactory) -> DiarizerFactory:
        if name in _DIARIZERS and _DIARIZERS[name] is not factory:
            raise ValueError(f"diarization backend {name!r} registered twice")
        _DIARIZERS[name] = factory
        return factory

    return decorator


def diarizer_backends() -> list[str]:
    _discover()
    return sorted(_DIARIZERS)


def load_diarizer(config: DiarizationConfig, models_dir: Path) -> Diarizer:
    """Load the configured diarization backend (once per process: the asr unit, `appliance transcribe`); its
    weights come from the model store `models_dir` (verified) or from inside its own package."""
    if config.backend not in _DIARIZERS:
        _discover()
    factory = _DIARIZERS.get(config.backend)
    if factory is None:
        raise ModelError(f"Unknown diarization backend {config.backend!r}; available: {sorted(_DIARIZERS)}")
    log.info("loading diarizer %s (%s)", config.backend, config.device)
    return factory(config, models_dir)
