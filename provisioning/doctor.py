"""`appliance doctor`: preflight checks, each with a fix-it hint (after Paperless-ngx's checks.py)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from appliance import clock
from appliance.config import Config
from appliance.errors import ApplianceError
from appliance.platform import db, keys, retention
from models.store import model_status

MIN_FREE_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str
    hint: str = ""
    warning: bool = False


def _state_dir(cfg: Config) -> Check:
    d = cfg.paths.state_dir
    if not d.is_dir():
        return Check("state dir", False, f"{d} does not exist", "run `appliance init` (or `make run`)")
    mode = d.stat().st_mode & 0o777
    if mode & 0o077:
        return Check("state dir", False, f"{d} is readable by others (mode {mode:o})", f"chmod 700 {d}")
    return Check("state dir", True, str(d))


def _keys_and_db(cfg: Config) -> list[Check]:
    out = []
    try:
        master = keys.load_master_key(cfg)
    except ApplianceError as exc:
        return [Check("master key", False, str(exc), "provision the systemd credential or run `appliance init`")]
    if os.environ.get("CREDENTIALS_DIRECTORY"):
        out.append(Check("master key", True, "from systemd credential"))
    else:
        out.append(Check("master key", True, "DEV key file in the state dir (not for production)",
                         "use LoadCredentialEncrypted=master-key (TPM2-sealed) on a real box", warning=True))
    try:
        current = keys.load_db_key(cfg, master)
        conn = db.connect(keys.db_path(cfg, current.generation), current.key)
        try:
            version = db.schema_version(conn)
            integrity = conn.execute("PRAGMA cipher_integrity_check").fetchall()
        finally:
            conn.close()
    except Exception as exc:  # noqa: BLE001 - doctor reports every failure as a check
        return [*out, Check("database", False, f"cannot open: {exc}", "run `appliance init`; restore from backup "
                            "if the key file was lost")]
    if integrity:
        out.append(Check("database", False, f"{len(integrity)} page(s) fail the cipher integrity check",
                         "restore the database from backup"))
    else:
        out.append(Check("database", True, f"SQLCipher, schema version {version}, generation {current.generation}, "
                         f"key {keys.fingerprint(current.key)}"))
    return out


def _models(cfg: Config) -> list[Check]:
    checks = []
    for st in model_status(cfg.paths.models):
        checks.append(Check(f"model {st.name}", st.ok, st.message,
                            "" if st.ok else "run `appliance models install-embedded` or install the offline bundle"))
    return checks


def _disk(cfg: Config) -> Check:
    target = cfg.paths.state_dir if cfg.paths.state_dir.exists() else cfg.paths.state_dir.parent
    free = shutil.disk_usage(target).free
    if free < MIN_FREE_BYTES:
        return Check("free disk", False, f"{free / 1024**3:.1f} GiB free in {target}",
                     "free space: recordings cannot be stored below 2 GiB free")
    return Check("free disk", True, f"{free / 1024**3:.1f} GiB free")


def _tls(cfg: Config) -> Check:
    if (cfg.paths.tls / "cert.pem").exists() and (cfg.paths.tls / "key.pem").exists():
        return Check("tls", True, str(cfg.paths.tls / "cert.pem"))
    return Check("tls", False, "no certificate", "run `appliance init` (self-signed) or install the office CA's")


def _clock(cfg: Config) -> Check:
    reading = clock.read(cfg.retention.rtc_path)
    if reading.rtc is None:
        return Check("hardware clock", True, f"no readable RTC at {cfg.retention.rtc_path}: retention trusts the "
                     "system clock alone", "enable the RTC (or point retention.rtc_path at it)", warning=True)
    if reading.disagrees(cfg.retention.clock_tolerance_seconds):
        return Check("hardware clock", False, f"hardware and system clocks differ by {reading.skew:.0f} s "
                     "(retention errs toward deletion)", "fix time sync (chrony) and `hwclock --systohc`")
    return Check("hardware clock", True, f"agrees with the system clock ({reading.skew:+.1f} s)")


def _open_database(cfg: Config):
    """The current database for a check that reads it, or None when it cannot be opened (the database check says
    why)."""
    try:
        master = keys.load_master_key(cfg)
        current = keys.load_db_key(cfg, master)
        return db.connect(keys.db_path(cfg, current.generation), current.key)
    except Exception:  # noqa: BLE001 - reported by the database check
        return None


def _purge(cfg: Config) -> Check:
    conn = _open_database(cfg)
    if conn is None:
        return Check("purge", False, "database unavailable", "see the database check")
    try:
        last = retention.last_successful_purge(conn)
        overdue = retention.purge_overdue(cfg, conn)
    finally:
        conn.close()
    when = "never" if last is None else dt.datetime.fromtimestamp(last).isoformat(timespec="minutes")
    if overdue:
        return Check("purge", False, f"no successful purge for more than {cfg.retention.purge_overdue_days} days "
                     f"(last: {when})", "check `systemctl status appliance-purge.timer` and run `appliance purge`")
    return Check("purge", True, f"last successful purge: {when}")


def check_log_review(cfg: Config) -> Check:
    """The responsible person has recorded a log review within `[log_review] warn_after_days` (a warning: the
    box works, but the office's follow-up of the audit log is overdue). appliance/compliance/log_reviews.py."""
    from appliance.compliance import log_reviews

    conn = _open_database(cfg)
    if conn is None:
        return Check("log review", False, "database unavailable", "see the database check")
    try:
        last = log_reviews.last_review_at(conn)
        overdue = log_reviews.overdue(cfg, conn)
    finally:
        conn.close()
    when = "never" if last is None else dt.datetime.fromtimestamp(last).isoformat(timespec="minutes")
    if overdue:
        return Check("log review", True, f"no log review recorded for more than {cfg.log_review.warn_after_days} "
                     f"days (last: {when})", "ask the responsible person to review the audit log "
                     "(Logguppföljning) and record it there", warning=True)
    return Check("log review", True, f"last recorded log review: {when}")


def _capture_devices(cfg: Config) -> Check:
    """Desk microphones are optional (the browser records too): a missing one is a warning, not a failure."""
    from services.alsa import DeviceError, list_devices, offered

    try:
        found = offered(list_devices(), cfg.recorder.device_pattern)
    except DeviceError as exc:
        return Check("desk microphones", True, str(exc), "apt-get install alsa-utils", warning=True)
    if not found:
        return Check("desk microphones", True, f"no capture device matches [recorder] device_pattern "
                     f"{cfg.recorder.device_pattern!r}", "plug in a USB microphone; `appliance recorder devices` "
                     "lists what ALSA sees", warning=True)
    return Check("desk microphones", True, ", ".join(d.name for d in found))


def _diarization(cfg: Config) -> Check:
    """The diarizer's weights are installed and match their pinned SHA-256 (the asr unit otherwise delivers
    transcripts without speakers)."""
    if not cfg.diarization.enabled:
        return Check("diarization", True, "off ([diarization] enabled = false)")
    if cfg.diarization.backend != "campplus":
        return Check("diarization", True, f"backend {cfg.diarization.backend}")
    from models.diarize_campplus import weight_files

    try:
        weight_files(cfg.paths.models)
    except ApplianceError as exc:
        return Check("diarization", False, str(exc),
                     "appliance models install-embedded (dev) or install the offline model bundle (a box)")
    return Check("diarization", True, "campplus weights installed and verified")


def check_llm(cfg: Config) -> Check:
    """The language model server answers at llm.base_url (a warning: the unit may simply not be started yet)."""
    from appliance.assistant.llm_client import LlmClient, LlmError

    try:
        served = LlmClient(cfg.llm).models()
    except LlmError as exc:
        unit = "start it: `systemctl start appliance-llm` (or `make run`)" if cfg.llm.serve else \
            "check that the model server is up"
        return Check("language model", True, f"{cfg.llm.base_url} does not answer ({exc})",
                     f"{unit}; check [llm] base_url", warning=True)
    if cfg.llm.model not in served:
        return Check("language model", True, f"{cfg.llm.base_url} serves {', '.join(served) or 'nothing'}, "
                     f"not {cfg.llm.model}", "set [llm] model to a model the server offers", warning=True)
    return Check("language model", True, f"{cfg.llm.model} at {cfg.llm.base_url}")


def _asr_backend(cfg: Config) -> list[Check]:
    """The configured transcription backend: in-process (the model check covers it) or a server that must
    answer, have its model loaded and take the configured language."""
    from models import load_transcriber

    backend = cfg.asr.backend
    if backend == "faster-whisper":
        return [Check("transcription", True, f"faster-whisper in the asr unit, model {cfg.asr.model} on "
                      f"{cfg.asr.device}" + (f", batches of {cfg.asr.batch_size}" if cfg.asr.batch_size else ""))]
    url = cfg.asr.triton.url if backend == "triton" else cfg.asr.riva.url
    name = f"transcription ({backend} at {url})"
    if backend == "triton":
        start = ("start it: `systemctl start appliance-triton` (`journalctl -u appliance-triton` says why it "
                 "stopped)" if cfg.asr.triton.url.rsplit(":", 1)[0] in ("127.0.0.1", "localhost", "[::1]")
                 else "check that the central Triton server runs")
        unready = (f"load model {cfg.asr.triton.model_name!r} on the server ([triton_server] models, the server's "
                   "log) or set [asr.triton] model_name to a model it serves")
    else:
        start = "check that the Riva server runs (`docker ps` / `systemctl status riva` on it)"
        unready = "set [asr.riva] model_name to a model the server lists, or leave it empty"
    try:
        status = load_transcriber(cfg.asr, cfg.paths.models).probe()
    except ApplianceError as exc:
        return [Check(name, False, str(exc), "check the [asr] section (`appliance config validate`)")]
    if not status.reachable:
        return [Check(name, False, status.detail, f"{start}; check [asr.{backend}] url, TLS files and the firewall")]
    if not status.model_ready:
        return [Check(name, False, status.detail, unready)]
    checks = [Check(name, True, status.detail)]
    language = cfg.asr.language if backend == "triton" else cfg.asr.riva.language_code
    offered = status.languages
    if offered is not None and language not in offered and not any(
            c.split("-")[0] == language.split("-")[0] for c in offered) and "multi" not in offered:
        checks.append(Check("transcription language", False, f"the server offers no model for {language!r} "
                            f"(it offers: {', '.join(sorted(offered))})",
                            f"set [asr] language / [asr.{backend}] to a language it offers, or install a model for "
                            f"{language} on the server"))
    else:
        checks.append(Check("transcription language", True, f"{language} is offered"
                            if offered is not None else f"{language} (the server does not list its languages)"))
    return checks


def run_checks(cfg: Config) -> list[Check]:
    steps: list[Callable[[Config], Check | list[Check]]] = [_state_dir, _keys_and_db, _models, _disk, _tls,
                                                            _clock, _purge, check_log_review,
                                                            _capture_devices, _diarization, check_llm, _asr_backend]
    checks: list[Check] = []
    for step in steps:
        result = step(cfg)
        checks.extend(result if isinstance(result, list) else [result])
    return checks
