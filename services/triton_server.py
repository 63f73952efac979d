"""The triton unit: Triton Inference Server serving the project's Whisper model repository (models/triton/).

`[asr] backend = "triton"` sends audio to a Triton server over gRPC (models/triton_asr.py). This module runs
one on this box (or on a central GPU server with the project installed): it verifies the Whisper model
against the manifest, renders the repository's config.pbtxt templates with the model's path and
`[triton_server]` (batching, instances, device) into a runtime directory, and replaces itself with
`tritonserver` listening on gRPC only (no HTTP, no metrics), on loopback unless TLS is configured.

The server runs from its own virtualenv (`[triton_server] python`, built from models/triton/requirements.txt):
the `nvidia-pytriton` wheel's tritonserver 2.51 with its Python backend, whose stub must load the same
libpython as that virtualenv (its LIBDIR goes first in LD_LIBRARY_PATH) and numpy < 2 (the stub misreads string
tensors with numpy 2). Run: `appliance triton-server` (the unit), `appliance triton-server render DIR`.
Server logs carry model loading and errors only: verbose logging (which prints requests) stays off.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from appliance.config import Config, TritonServerConfig, load_config
from appliance.errors import ApplianceError, ConfigError

log = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parent.parent
MODELS = ("whisper", "whisper_bls_ct2")  # the models in models/triton/


@dataclass(frozen=True)
class ServerInstall:
    """Where the server virtualenv's tritonserver, Python backend and stub are."""

    python: Path
    site_packages: Path
    libdir: Path  # the virtualenv's libpython, which the stub must load
    version: str  # "3.11"

    @property
    def root(self) -> Path:
        return self.site_packages / "pytriton" / "tritonserver"

    @property
    def binary(self) -> Path:
        return self.root / "bin" / "tritonserver"

    @property
    def stub(self) -> Path:
        return self.root / "python_backend_stubs" / self.version / "triton_python_backend_stub"

    @property
    def libs(self) -> Path:
        return self.site_packages / "nvidia_pytriton.libs"


def server_python(cfg: TritonServerConfig) -> Path:
    return cfg.python if cfg.python.is_absolute() else PROJECT_DIR / cfg.python


def find_install(python: Path) -> ServerInstall:
    """Ask the server virtualenv's Python where its packages and libpython are; check tritonserver is there."""
    if not python.exists():
        raise ConfigError(f"No Python at {python} for the Triton server: build its virtualenv "
                          "(`make triton-venv`, from models/triton/requirements.txt) or set [triton_server] python")
    probe = ("import json, sys, sysconfig; print(json.dumps([sysconfig.get_paths()['purelib'], "
             "sysconfig.get_config_var('LIBDIR'), '%d.%d' % sys.version_info[:2]]))")
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    purelib, libdir, version = json.loads(out.stdout)
    install = ServerInstall(python, Path(purelib), Path(libdir), version)
    for path, what in ((install.binary, "tritonserver"), (install.stub, f"the Python backend stub for {version}")):
        if not path.is_file():
            raise ConfigError(f"{what} not found at {path}: install nvidia-pytriton into the server's virtualenv "
                              "(models/triton/requirements.txt)")
    return install


def render_repository(cfg: Config, target: Path, model_dir: Path, models: tuple[str, ...] = ("whisper",)) -> Path:
    """Write the model repository for `models` into `target`, the templates filled in; returns `target`."""
    server = cfg.triton_server
    values = {
        "max_batch_size": server.max_batch_size,
        "max_queue_delay_microseconds": int(server.max_queue_delay_ms * 1000),
        "instances": server.instances,
        "instance_kind": "KIND_GPU" if server.device == "cuda" else "KIND_CPU",
        "model_dir": str(Path(model_dir).resolve()),  # the server runs elsewhere (its runtime directory)
        "device": server.device,
        "compute_type": server.compute_type,
        "cpu_threads": server.cpu_threads,
        "workers": server.workers,
        "seed": cfg.asr.seed,
    }
    source = resources.files("models").joinpath("triton")
    for name in models:
        if name not in MODELS:
            raise ConfigError(f"No model {name!r} in models/triton/ (there are: {', '.join(MODELS)})")
        (target / name / "1").mkdir(parents=True, exist_ok=True)
        text = source.joinpath(name, "config.pbtxt").read_text(encoding="utf-8")
        (target / name / "config.pbtxt").write_text(Template(text).substitute(values), encoding="utf-8")
        code = source.joinpath(name, "1", "model.py").read_text(encoding="utf-8")
        (target / name / "1" / "model.py").write_text(code, encoding="utf-8")
    return target


def prepare_backends(install: ServerInstall, target: Path) -> Path:
    """A copy of the wheel's backends/ with the stub for the virtualenv's Python put into backends/python."""
    backends = target / "backends"
    if backends.exists():
        shutil.rmtree(backends)
    shutil.copytree(install.root / "backends", backends)
    shutil.copy2(install.stub, backends / "python" / "triton_python_backend_stub")
    return backends


def command(cfg: TritonServerConfig, install: ServerInstall, repository: Path, backends: Path) -> list[str]:
    cmd = [str(install.binary), f"--model-repository={repository}", f"--backend-directory={backends}",
           f"--grpc-address={cfg.host}", f"--grpc-port={cfg.port}",
           "--allow-http=false", "--allow-metrics=false", "--allow-gpu-metrics=false", "--allow-cpu-metrics=false",
           "--log-verbose=0", "--strict-readiness=true", "--exit-timeout-secs=5"]
    if cfg.tls_cert_file is not None:
        cmd += ["--grpc-use-ssl=true", f"--grpc-server-cert={cfg.tls_cert_file}",
                f"--grpc-server-key={cfg.tls_key_file}"]
        if cfg.tls_client_ca_file is not None:
            cmd += ["--grpc-use-ssl-mutual=true", f"--grpc-root-cert={cfg.tls_client_ca_file}"]
    return cmd


def environment(install: ServerInstall, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(install.libdir), str(install.libs),
                                                         env.get("LD_LIBRARY_PATH", "")) if p)
    env["PATH"] = os.pathsep.join((str(install.python.parent), env.get("PATH", "/usr/bin:/bin")))
    env["HF_HUB_OFFLINE"] = "1"  # models come from local files only
    env["ORT_DISABLE_TELEMETRY"] = "1"
    return env


def prepare(cfg: Config, workdir: Path, models: tuple[str, ...] | None = None) -> tuple[list[str], dict[str, str]]:
    """Verify the model, render the repository and backends into `workdir`: the command and its environment."""
    from models.store import verify_model

    server = cfg.triton_server
    model_dir = verify_model(cfg.paths.models, server.model or cfg.asr.model)
    install = find_install(server_python(server))
    repository = render_repository(cfg, workdir / "repository", model_dir, models or server.models)
    backends = prepare_backends(install, workdir)
    return command(server, install, repository, backends), environment(install)


def start(cfg: Config, workdir: Path, models: tuple[str, ...] | None = None, log_file: Path | None = None
          ) -> subprocess.Popen:
    """Start tritonserver as a child process (tests, benches); `main` execs it instead."""
    cmd, env = prepare(cfg, workdir, models)
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(host: str, port: int, process: subprocess.Popen | None = None, timeout: float = 120) -> None:
    """Wait until the gRPC port accepts connections (the server opens it once its models are loaded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ApplianceError(f"tritonserver exited with status {process.returncode} while starting")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise ApplianceError(f"tritonserver did not open {host}:{port} within {timeout:.0f} s")


def main(config_path: str | None = None, render_dir: str | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = load_config(config_path)
        if render_dir:
            model_dir = cfg.paths.models / (cfg.triton_server.model or cfg.asr.model)
            render_repository(cfg, Path(render_dir), model_dir, MODELS)
            print(f"Model repository written to {render_dir} (models: {', '.join(MODELS)})")
            return 0
        # systemd's RuntimeDirectory= (tmpfs, removed on stop); elsewhere a private temp dir.
        workdir = Path(os.environ.get("RUNTIME_DIRECTORY") or tempfile.mkdtemp(prefix="samtalsstod-triton-"))
        cmd, env = prepare(cfg, workdir)
    except ApplianceError as exc:
        log.error("triton cannot start: %s", exc)
        return 2
    log.info("starting tritonserver on %s:%d (gRPC only%s)", cfg.triton_server.host, cfg.triton_server.port,
             ", TLS" if cfg.triton_server.tls_cert_file else "")
    sys.stdout.flush()
    os.execve(cmd[0], cmd, env)  # noqa: S606 - a fixed binary, no shell; systemd supervises tritonserver itself; SIGTERM reaches it directly


if __name__ == "__main__":
    raise SystemExit(main())
