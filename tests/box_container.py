"""A real systemd in a systemd-nspawn container on a debootstrapped Debian 12 root (tests/test_box.py).

`packaging/box-root.sh` builds the root once into a tarball in the cache; each `Box` unpacks it into a fresh
directory, boots it with its own network namespace (`--private-network`: only its own loopback, no route
out), and runs commands inside with `nsenter` into the container's PID 1 (machinectl needs a machined on the
host, which this machine has not). Everything it runs inside gets a clean environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tarfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLEAN_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
             "TERM": "dumb"}


def cache_dir() -> Path:
    return Path(os.environ.get("BOX_CACHE", ROOT / "var" / "cache" / "box"))


def build_root_tarball(cache: Path) -> Path:
    out = subprocess.run([str(ROOT / "packaging" / "box-root.sh"), str(cache)], capture_output=True, text=True,
                         timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"box-root.sh failed: {out.stderr[-2000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def build_deb(cache: Path) -> Path:
    out = subprocess.run([str(ROOT / "packaging" / "build-deb.sh"), str(cache / "deb"), str(cache / "wheelhouse")],
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"build-deb.sh failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


@dataclass
class Box:
    """One booted container. `run()` executes inside (all namespaces of its PID 1)."""

    root: Path
    name: str = field(default_factory=lambda: f"box{uuid.uuid4().hex[:8]}")
    proc: subprocess.Popen | None = None
    pid1: int = 0
    console: Path | None = None

    @classmethod
    def unpack(cls, tarball: Path, workdir: Path) -> Box:
        root = workdir / "root"
        root.mkdir(parents=True)
        with tarfile.open(tarball) as tf:
            tf.extractall(root, numeric_owner=True, filter="fully_trusted")  # noqa: S202 - our own tarball
        return cls(root)

    def boot(self, timeout: float = 60) -> None:
        self.console = self.root.parent / "console.log"
        env = {**CLEAN_ENV, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
        with self.console.open("wb") as log:
            self.proc = subprocess.Popen(
                # CAP_WAKE_ALARM: the purge timer has WakeSystem=true, which a box's systemd can always arm.
                ["systemd-nspawn", "-D", str(self.root), "-b", "--register=no", "--keep-unit", "--private-network",
                 "--capability=CAP_WAKE_ALARM", "--console=read-only", "-M", self.name],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nspawn exited: {self.console.read_text(errors='replace')[-3000:]}")
            kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
            pids = kids.read_text().split() if kids.exists() else []
            if pids:
                self.pid1 = int(pids[0])
                state = self.run(["systemctl", "is-system-running"], check=False, timeout=10).stdout.strip()
                if state in ("running", "degraded"):
                    return
            time.sleep(0.3)
        raise RuntimeError(f"container did not boot: {self.console.read_text(errors='replace')[-3000:]}")

    def run(self, cmd: list[str], *, check: bool = True, timeout: float = 120, input: str | bytes | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
        full = ["nsenter", "-t", str(self.pid1), "-a", "--", "env", "-i",
                *[f"{k}={v}" for k, v in {**CLEAN_ENV, **(env or {})}.items()], *cmd]
        text = not isinstance(input, bytes)
        out = subprocess.run(full, capture_output=True, text=text, timeout=timeout, input=input)
        if check and out.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} → {out.returncode}\n{out.stdout}\n{out.stderr}")
        return out

    def sh(self, script: str, **kw) -> subprocess.CompletedProcess:
        return self.run(["sh", "-c", script], **kw)

    def host_netns(self, pid: int | None = None) -> list[str]:
        """Prefix running a host program in the container's (or one of its processes') network namespace."""
        return ["nsenter", "-t", str(pid or self.pid1), "-n", "--"]

    def journal(self, unit: str, lines: int = 80) -> str:
        return self.run(["journalctl", "--no-pager", "-n", str(lines), "-u", unit], check=False).stdout

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None and self.pid1:
            self.run(["systemctl", "poweroff"], check=False, timeout=30)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def remove(self) -> None:
        shutil.rmtree(self.root.parent, ignore_errors=True)
