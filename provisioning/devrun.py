"""`appliance run`: the dev/demo supervisor behind `make run`.

Starts the same processes systemd starts on a box (web under gunicorn with TLS, the asr worker, the
desk-microphone recorder, the llm unit and the assistant worker, the shred timer's work as a loop, and the
triton unit when the asr unit uses Triton on this machine: `make triton-venv` first),
restarts a crashed child like `Restart=always` would, and stops them all on Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

from appliance.config import Config
from appliance.platform.context import init_state
from appliance.users import accounts
from provisioning.tls import ensure_self_signed

log = logging.getLogger(__name__)

DEV_ADMIN = "admin"
DEV_PASSWORD_FILE = "dev-admin-password.txt"  # noqa: S105 - a file name: in the secrets/ folder, 0600


def _password_notice(cfg: Config, password: str) -> str:
    """The one-time password on the terminal; never into a redirected log (a file for the developer instead)."""
    if sys.stdout.isatty():
        return f"  Lösenord:  {password}\n"
    path = cfg.paths.secrets / DEV_PASSWORD_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(password + "\n")
    return (f"  Lösenordet skrivs inte ut i en logg; det står i {path}\n"
            "  (bara läsbart för dig; radera filen när du har loggat in)\n")


def ensure_dev_admin(cfg: Config) -> str:
    """Create the dev administrator on first start; returns what to print about signing in."""
    app = init_state(cfg)
    conn = app.connect()
    try:
        if accounts.find_user(conn, DEV_ADMIN) is None:
            # admin manages the box; caseworker lets the developer try the content path on a dev box.
            # The one account allowed to combine them (accounts.check_roles); the UI says so on every page.
            _, password = accounts.create_user(conn, DEV_ADMIN, ["admin", "caseworker"], actor="system:devrun",
                                               display_name="Utvecklare (dev)", allow_combined=True)
            return (f"  Användare: {DEV_ADMIN}\n{_password_notice(cfg, password)}"
                    "  (visas bara nu; första inloggningen registrerar tvåstegsverifiering: skanna QR-koden\n"
                    "   med en autentiseringsapp, eller skriv in hemligheten som visas)")
        return (f"  Användare: {DEV_ADMIN} (finns redan; glömt lösenordet? "
                f"`.venv/bin/appliance user reset-password {DEV_ADMIN}`)")
    finally:
        conn.close()


def gunicorn_command(cfg: Config) -> list[str]:
    """The web unit as systemd runs it (settings in web/gunicorn_conf.py), on the dev port and certificate."""
    cert, key = ensure_self_signed(cfg.paths.tls)
    return [sys.executable, "-m", "gunicorn", "-c", "python:web.gunicorn_conf",
            "--bind", f"{cfg.web.host}:{cfg.web.port}", "--certfile", str(cert), "--keyfile", str(key),
            "--workers", str(cfg.web.workers), "web.wsgi:app"]


def asr_command() -> list[str]:
    return [sys.executable, "-m", "services.asr"]


def assistant_commands(cfg: Config) -> dict[str, list[str]]:
    """The llm unit (unless llm.serve is off: another server at llm.base_url) and the assistant worker."""
    cmds = {"llm": [sys.executable, "-m", "services.llm"]} if cfg.llm.serve else {}
    return {**cmds, "assistant": [sys.executable, "-m", "services.assistant"]}


def triton_commands(cfg: Config) -> dict[str, list[str]]:
    """The triton unit, when the asr unit uses Triton on this machine ([asr] backend = "triton" at the address
    [triton_server] listens on); a central server is started elsewhere."""
    if cfg.asr.backend != "triton" or cfg.asr.triton.url != f"{cfg.triton_server.host}:{cfg.triton_server.port}":
        return {}
    return {"triton": [sys.executable, "-m", "services.triton_server"]}


def recorder_command() -> list[str]:
    return [sys.executable, "-m", "services.recorder"]


def shred_command() -> list[str]:
    """The shred timer's work every 5 minutes (a box runs appliance-shred.timer instead)."""
    return [sys.executable, "-m", "provisioning.cli", "shred", "--every", "300"]


def run(cfg: Config) -> int:
    signin = ensure_dev_admin(cfg)
    children = {"web": gunicorn_command(cfg), "asr": asr_command(), "recorder": recorder_command(),
                "shred": shred_command(), **assistant_commands(cfg), **triton_commands(cfg)}
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs = {name: subprocess.Popen(cmd, env=env) for name, cmd in children.items()}
    print(f"\nSamtalsstöd körs på https://{cfg.web.host}:{cfg.web.port}  (självsignerat certifikat)\n"
          f"{signin}\nAvsluta med Ctrl-C.\n", flush=True)
    stopping = False

    def _stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None and not stopping:
                    log.warning("%s exited with %s; restarting", name, proc.returncode)
                    time.sleep(1)
                    procs[name] = subprocess.Popen(children[name], env=env)
            time.sleep(0.5)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0
