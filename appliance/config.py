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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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


_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_GRPC_TARGET = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):[0-9]{1,5}$"


def grpc_host(target: str) -> str:
    """'127.0.0.1:8001' -> '127.0.0.1', '[::1]:8001' -> '::1'."""
    return target.rsplit(":", 1)[0].strip("[]")


class _GrpcClientConfig(_Strict):
    """How the asr unit reaches an inference server over gRPC: loopback, or TLS (mutual with a client
    certificate) to a central server. Certificate and key are file paths; the key file is IT's to protect."""

    tls: bool = Field(False, title="Use TLS (required for a server that is not on loopback)")
    ca_file: Path | None = Field(None, title="CA certificate(s) the server's certificate must chain to (PEM); "
                                            "default: the system's")
    cert_file: Path | None = Field(None, title="This box's client certificate (PEM) for mutual TLS")
    key_file: Path | None = Field(None, title="The client certificate's private key (PEM file, readable by the "
                                             "asr unit only)")
    connect_timeout_seconds: float = Field(5, gt=0, le=120, title="Give up connecting to the server after this")
    request_timeout_seconds: float = Field(600, gt=0, le=7200,
                                           title="Give up on one request (one chunk of audio) after this")
    retries: int = Field(3, ge=0, le=20, title="Retries of a failed request before the job waits (server down)")
    retry_backoff_seconds: float = Field(1.0, ge=0, le=60,
                                         title="Wait before the first retry; doubled for each further one")

    def _check_tls(self, url: str) -> None:
        if not self.tls and grpc_host(url) not in _LOOPBACK:
            raise ValueError(f"{url} is not on loopback: set tls = true (and cert_file/key_file for mutual TLS); "
                             "audio must not cross the network in clear text")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (mutual TLS)")


class TritonAsrConfig(_GrpcClientConfig):
    """`[asr] backend = "triton"`: Whisper served by Triton Inference Server (models/triton_asr.py)."""

    url: str = Field("127.0.0.1:8001", pattern=_GRPC_TARGET, title="Triton's gRPC address (HOST:PORT)")
    model_name: str = Field("whisper", pattern=r"^[A-Za-z0-9_.\-]{1,100}$", title="Model name in Triton's repository")
    protocol: Literal["samtalsstod", "trtllm-whisper"] = Field(
        "samtalsstod",
        title="samtalsstod: the project's own model (models/triton/whisper: segments, words, probabilities); "
              "trtllm-whisper: the tensors of NVIDIA's TensorRT-LLM Whisper example (WAV, WAV_LENS, TEXT_PREFIX -> "
              "TRANSCRIPTS): text per chunk of at most 30 s, no word timestamps or probabilities")
    chunk_seconds: float = Field(
        300, ge=5, le=600,
        title="Longest audio per request; longer recordings are cut at silences. The server runs faster-whisper's "
              "own 30-second windowing inside a piece, so long pieces cost what in-process costs; short ones "
              "(30) let a GPU server decode one recording's pieces in parallel (max_in_flight). trtllm-whisper "
              "takes at most 30 (one window per request)")
    max_in_flight: int = Field(2, ge=1, le=64,
                               title="Chunks of one recording sent at once (the server batches them dynamically)")

    @model_validator(mode="after")
    def _check(self) -> TritonAsrConfig:
        self._check_tls(self.url)
        if self.protocol == "trtllm-whisper" and "chunk_seconds" in self.model_fields_set and self.chunk_seconds > 30:
            raise ValueError("trtllm-whisper takes at most 30 s per request: chunk_seconds <= 30")
        return self


class RivaAsrConfig(_GrpcClientConfig):
    """`[asr] backend = "riva"`: NVIDIA Riva's ASR service (models/riva_asr.py)."""

    url: str = Field("127.0.0.1:50051", pattern=_GRPC_TARGET, title="Riva's gRPC address (HOST:PORT)")
    language_code: str = Field("sv-SE", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$|^multi$",
                               title="Language code sent to Riva (sv-SE, or what a multilingual model takes)")
    model_name: str = Field("", pattern=r"^[A-Za-z0-9_.\-]{0,200}$",
                            title="Riva model to use; empty: the server picks one for the language")
    punctuation: bool = Field(True, title="Ask Riva for automatic punctuation")
    chunk_seconds: float = Field(300, ge=5, le=3600,
                                 title="Longest audio per offline request; longer recordings are cut at silences")
    max_message_mb: int = Field(64, ge=4, le=2000,
                                title="gRPC message limit in MiB (gRPC's default 4 MiB holds only ~2 minutes "
                                      "of 16 kHz PCM); the server must accept as much")

    @model_validator(mode="after")
    def _check(self) -> RivaAsrConfig:
        self._check_tls(self.url)
        if self.chunk_seconds * 16_000 * 2 > self.max_message_mb * 1024 * 1024 * 0.95:
            raise ValueError(f"chunk_seconds = {self.chunk_seconds:g} needs more than max_message_mb = "
                             f"{self.max_message_mb} MiB of 16-bit PCM per request")
        return self


class AsrConfig(_Strict):
    backend: Literal["faster-whisper", "triton", "riva"] = Field(
        "faster-whisper", title="Transcription backend: faster-whisper in the asr unit, Whisper on a Triton "
                                "Inference Server ([asr.triton]) or NVIDIA Riva ([asr.riva])")
    model: str = Field("whisper-base", title="Model name in the model store (faster-whisper; also what the "
                                             "triton unit serves)")
    language: str = Field("sv", min_length=2, max_length=3, title="Default spoken language")
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", title="Inference device")
    compute_type: str = Field("int8", title="CTranslate2 compute type (int8, float16, int8_float16 …)")
    cpu_threads: int = Field(0, ge=0, title="CPU threads (0 = library default)")
    batch_size: int = Field(
        0, ge=0, le=128,
        title="faster-whisper on a GPU: transcribe files with its BatchedInferencePipeline, this many 30-second "
              "pieces at once (0 = one after another, the CPU default; bench/asr_gpu.py measures it)")
    beam_size: int = Field(5, ge=1, le=10, title="Beam size")
    vad_filter: bool = Field(True, title="Skip silence with Silero VAD")
    condition_on_previous_text: bool = Field(
        False, title="Whisper reads its previous text as context for the next window (on: steadier wording, but "
                     "a hallucination can carry on; bench/hallucination.py)")
    initial_prompt: str = Field(
        "none", max_length=1000,
        title='Whisper initial prompt: "lexicon" (built from the domain lexicon), "none", or the prompt text itself '
              "(default none: bench/initial_prompt.py measured the lexicon prompt making base Whisper worse)")
    seed: int = Field(1234, ge=0, title="Seed for Whisper's temperature-fallback sampling (reproducible transcripts)")
    lease_seconds: int = Field(60, ge=2, title="Job lease; a dead worker's job is retried after this")
    poll_seconds: float = Field(1.0, gt=0, title="Queue poll interval when idle")
    max_attempts: int = Field(3, ge=1, title="Attempts before a job is marked failed")
    unavailable_wait_seconds: float = Field(
        30, gt=0, le=3600, title="When the transcription server is down, wait this long before the next try "
                                 "(the job waits in the queue; its attempt is not counted)")
    triton: TritonAsrConfig = TritonAsrConfig()
    riva: RivaAsrConfig = RivaAsrConfig()


class TritonServerConfig(_Strict):
    """The `triton` unit (services/triton_server.py): Triton Inference Server on this box serving the project's
    model repository (models/triton/) with the model store's Whisper model. A central server for several
    boxes runs the same (README: "A central Triton server")."""

    python: Path = Field(
        Path(".venv-triton/bin/python"),
        title="Python of the server's own virtualenv (nvidia-pytriton's tritonserver + faster-whisper, numpy < 2: "
              "models/triton/requirements.txt; relative paths are from the project directory)")
    host: str = Field("127.0.0.1", title="gRPC listen address (loopback on a box; a central server: TLS required)")
    port: int = Field(8001, ge=1, le=65535, title="gRPC port")
    model: str = Field("", title="Model store name of the Whisper model served (empty: [asr] model)")
    models: tuple[Literal["whisper", "whisper_bls_ct2"], ...] = Field(
        ("whisper",), min_length=1,
        title="Models of models/triton/ to serve: whisper (the samtalsstod protocol), whisper_bls_ct2 (the "
              "TensorRT-LLM example's tensors, faster-whisper standing in for the engine)")
    device: Literal["cpu", "cuda"] = Field("cpu", title="Inference device inside the server")
    compute_type: str = Field("int8", title="CTranslate2 compute type inside the server")
    cpu_threads: int = Field(0, ge=0, title="CPU threads per model worker (0 = library default)")
    instances: int = Field(1, ge=1, le=16, title="Model instances (processes); more on a GPU server")
    workers: int = Field(1, ge=1, le=16, title="Requests each instance decodes in parallel (CTranslate2 workers)")
    max_batch_size: int = Field(8, ge=1, le=256, title="Requests the dynamic batcher hands over at once")
    max_queue_delay_ms: float = Field(5, ge=0, le=1000, title="How long the dynamic batcher waits to fill a batch")
    tls_cert_file: Path | None = Field(None, title="Server certificate (PEM) for gRPC over TLS")
    tls_key_file: Path | None = Field(None, title="Its private key (PEM)")
    tls_client_ca_file: Path | None = Field(None, title="CA of the client certificates: mutual TLS, only boxes "
                                                        "holding a certificate from it may connect")
    private_network: bool = Field(False, title="Listen off loopback without TLS: only on a network that nothing "
                                               "but the boxes can reach (a VPN); mutual TLS is better")

    @model_validator(mode="after")
    def _check(self) -> TritonServerConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file (mutual TLS) needs tls_cert_file and tls_key_file")
        if self.host not in _LOOPBACK and self.tls_cert_file is None and not self.private_network:
            raise ValueError(f"host {self.host} is not loopback: configure TLS (tls_cert_file, tls_key_file and "
                             "tls_client_ca_file for mutual TLS) or, on a closed network, private_network = true")
        return self


class DiarizationConfig(_Strict):
    """Speakers: the asr unit labels transcript lines by speaker (models/diarize_campplus.py by default)."""

    enabled: bool = Field(True, title="Label transcript lines by speaker")
    backend: Literal["campplus", "resemblyzer"] = Field(
        "campplus", title="Diarization backend (campplus: pyannote segmentation-3.0 + CAM++ embeddings + "
                          "agglomerative clustering, overlap-aware; resemblyzer: its voice encoder + WebRTC VAD + "
                          "spectral clustering; bench/diarization.py measures both on AMI meetings)")
    device: Literal["cpu", "cuda"] = Field("cpu", title="Inference device of the voice encoder")
    max_speakers: int = Field(10, ge=2, le=10, title="Most speakers the count estimate may find (without a hint)")
    step_seconds: float = Field(
        5.0, ge=0.5, le=10, title="campplus: a 10-second segmentation chunk every this many seconds; less: each "
                                  "moment seen by more chunks, slower (AMI: 2.5 s no better than 5 s)")
    windows_per_second: float = Field(
        4.0, ge=0.5, le=10, title="resemblyzer: voice embeddings per second of audio (1.6 s windows); more: finer "
                                  "turns, slower")
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
    audio_shred: Literal["purge", "transferred", "hours_after_final"] = Field(
        "purge",
        title="When a recording's audio is crypto-shredded ahead of its text: at the purge with the rest (purge), "
              "as soon as the caseworker marks it transferred to the case system (transferred), or "
              "audio_hours_after_final hours after its transcript is final (hours_after_final); the transcript "
              "stays until the purge either way (appliance/recordings/audio_life.py)")
    audio_hours_after_final: float = Field(
        24, ge=0, le=24 * 365,
        title="With audio_shred = hours_after_final: hours between the final transcript and the audio's shredding "
              "(0: as soon as the transcript is final)")
    gallringsbeslut: str = Field(
        "", max_length=200, pattern=r"^[^\n\r]*$",
        title="Reference of the decision that permits the purge (gallringsbeslut, e.g. 'SN 2025/123 § 4'); the purge "
              "refuses to run without one and every page's footer shows it (`appliance provision gallringsbeslut`)")

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


class RecorderConfig(_Strict):
    """Desk microphones: the `recorder` unit captures from ALSA devices of the box (services/recorder.py)."""

    device_pattern: str = Field(
        r"^plughw:", max_length=200,
        title="Regular expression over ALSA capture device names (`arecord -L`): the devices offered to "
              "caseworkers (default: every sound card through ALSA's converting plughw plugin)")
    chunk_seconds: float = Field(2.0, ge=0.5, le=30, title="Captured audio is stored in chunks of this length")
    poll_seconds: float = Field(0.25, gt=0, le=5, title="How often the recorder looks for start/pause/stop requests")
    heartbeat_seconds: float = Field(2.0, gt=0, le=60, title="How often the recorder reports that it is alive")
    stale_seconds: float = Field(15.0, gt=0, le=600,
                                 title="A recorder silent this long counts as stopped (its recordings can be "
                                       "finished from the web)")
    device_refresh_seconds: float = Field(10.0, gt=0, le=3600, title="How often the list of devices is refreshed")

    @field_validator("device_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
        return value


class RecordingConfig(_Strict):
    """Live recordings (browser dictaphone and desk microphones): appliance/live.py."""

    max_minutes: int = Field(240, ge=1, le=24 * 60,
                             title="Longest live recording; capture stops cleanly there and the page says why")
    min_free_mb: int = Field(1024, ge=0,
                             title="Refuse to start a recording when the state directory's disk has less free space "
                                   "(MiB)")
    chunk_seconds: float = Field(2.5, ge=0.5, le=10,
                                 title="The browser sends audio in pieces of this length; also the length of "
                                       "silence put in for a piece that never arrived")
    live_silence_ms: int = Field(600, ge=100, le=5000,
                                 title="Silence that ends a finished stretch of speech, which the live "
                                       "transcript then transcribes while the recording goes on")
    live_step_seconds: float = Field(8.0, ge=1, le=25,
                                     title="The live transcript waits for this much new audio before it transcribes "
                                           "up to the last finished stretch of speech (Whisper costs about the same "
                                           "for 1 s as for 10 s, so fewer, longer steps keep up; the tail left at "
                                           "stop is at most about this long)")


class LlmConfig(_Strict):
    """The documentation assistant's language model: the `llm` unit (services/llm.py) serves the GGUF model
    through llama-cpp-python's OpenAI-compatible server; the web and workers speak that protocol to
    `base_url` (appliance/llm_client.py), which IT may point at another on-prem OpenAI-compatible server."""

    base_url: str = Field(
        "http://127.0.0.1:8091/v1", max_length=300,
        title="OpenAI chat-completions endpoint the web and workers use: http(s)://HOST:PORT/v1, or "
              "unix:/PATH/llm.sock for the llm unit's Unix socket")
    model: str = Field("qwen2.5-coder-1.5b-instruct-q4_k_m", min_length=1, max_length=200,
                       title="Model: its name in the model store (served by the llm unit) and the model name "
                             "sent in requests. The embedded default is a small instruction-tuned model; a real box "
                             "installs a larger Swedish-capable instruct GGUF or points base_url at another server")
    serve: bool = Field(True, title="Run the llm unit on this box (false when base_url points at another server)")
    chat_format: str = Field(
        "", pattern=r"^[a-z0-9_.\-]{0,40}$",
        title="llama.cpp chat format of the served model; empty (default): the chat template inside the GGUF file, "
              "which instruct models carry (the embedded Gemma 270M base model has none: set gemma for it)")
    host: str = Field("127.0.0.1", title="The llm unit's listen address (loopback only)")
    port: int = Field(8091, ge=1, le=65535, title="The llm unit's TCP port on loopback")
    socket: Path | None = Field(None, title="Listen on this Unix socket instead of host/port")
    n_ctx: int = Field(8192, ge=512, le=262_144,
                       title="Context size in tokens (a 5-minute conversation fits whole, so chat questions about one "
                             "recording share its transcript as a cached prompt prefix)")
    n_gpu_layers: int = Field(0, ge=-1, title="Layers offloaded to the GPU (0 = CPU only, -1 = all)")
    n_threads: int = Field(0, ge=0, title="CPU threads (0 = library default)")
    prompt_cache_mb: int = Field(
        512, ge=0, le=65_536,
        title="RAM (MiB) for the llm unit's cache of evaluated prompts (a recording's transcript is read once, not "
              "for every question); never written to disk; 0 turns it off")
    prompt_cache_minutes: float = Field(
        60, gt=0, le=24 * 60, title="A cached prompt is dropped this long after its last use (transcript content "
                                    "does not linger in the llm unit's memory)")
    connect_timeout_seconds: float = Field(5, gt=0, le=120, title="Give up connecting to the model server after this")
    read_timeout_seconds: float = Field(120, gt=0, le=3600,
                                        title="Give up when the model server sends nothing for this long")
    max_tokens: int = Field(1024, ge=16, le=32_768, title="Longest answer the model may write per request")
    temperature: float = Field(0.2, ge=0, le=2, title="Sampling temperature (low: fewer inventions)")
    seed: int = Field(1234, ge=0, title="Sampling seed (reproducible drafts from the same transcript)")

    @field_validator("host")
    @classmethod
    def _loopback(cls, value: str) -> str:
        if value not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the llm unit listens on loopback only (127.0.0.1, ::1 or localhost) or a socket")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not re.match(r"^(https?://[^/\s]+(/\S*)?|unix:/\S+)$", value):
            raise ValueError("expected http(s)://HOST:PORT/v1 or unix:/PATH/TO/llm.sock")
        return value.rstrip("/")


class AssistantConfig(_Strict):
    """Summaries under templates (appliance/assistant/), run by the assistant worker (services/assistant.py)."""

    templates_dir: Path | None = Field(
        None, title="The office's own summary templates as TOML files (name, headings, instructions); "
                    "added to the built-in ones and those admins add in the UI")
    chunk_chars: int = Field(6000, ge=500, le=1_000_000,
                             title="Transcript characters per model request; longer transcripts are summarised "
                                   "in chunks and merged (map-reduce)")
    max_statements_per_heading: int = Field(4, ge=1, le=20,
                                            title="Most statements kept per heading from one model request; a "
                                                  "heading with more after merging chunks is condensed")
    max_statements: int = Field(24, ge=1, le=100,
                                title="Most statements in one model request (model drafting) or in a whole draft "
                                      "(guided drafting)")
    drafting: Literal["guided", "model"] = Field(
        "guided", title="guided: lines are sorted under the template's headings by their words and the model writes "
                        "one statement per line (what the embedded 1.5B model can do); model: the model sorts and "
                        "writes on its own (a 7-12B instruct model); templates without word lists always use model")
    statement_max_chars: int = Field(240, ge=40, le=2000, title="Longest statement the model may write (characters)")
    reduce_fan_in: int = Field(4, ge=2, le=32, title="Partial summaries merged per reduce request")
    lease_seconds: int = Field(120, ge=2, title="Job lease; a dead worker's summary is retried after this")
    poll_seconds: float = Field(1.0, gt=0, title="Queue poll interval when idle")
    max_attempts: int = Field(3, ge=1, title="Attempts before a summary is marked failed")


class LogReviewConfig(_Strict):
    """Log follow-up (logguppföljning) by the responsible person: appliance/compliance/log_reviews.py."""

    warn_after_days: int = Field(30, ge=1, le=366,
                                 title="`appliance doctor` (and the compliance report) warn when no log review was "
                                       "recorded for this many days")


class Config(_Strict):
    paths: PathsConfig = PathsConfig()
    web: WebConfig = WebConfig()
    asr: AsrConfig = AsrConfig()
    triton_server: TritonServerConfig = TritonServerConfig()
    diarization: DiarizationConfig = DiarizationConfig()
    retention: RetentionConfig = RetentionConfig()
    mail: MailConfig = MailConfig()
    accounts: AccountsConfig = AccountsConfig()
    guidelines: GuidelinesConfig = GuidelinesConfig()
    recording: RecordingConfig = RecordingConfig()
    recorder: RecorderConfig = RecorderConfig()
    llm: LlmConfig = LlmConfig()
    assistant: AssistantConfig = AssistantConfig()
    log_review: LogReviewConfig = LogReviewConfig()


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
        # A sub-section's key: APPLIANCE_ASR__TRITON__URL -> [asr.triton] url.
        *parents, leaf = key.split("__")
        node = out.setdefault(section, {})
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _merge(base: dict, override: dict) -> dict:
    """`base` with `override`'s keys put in, sub-sections merged key by key (not replaced)."""
    merged = {k: _merge(v, {}) if isinstance(v, dict) else v for k, v in base.items()}
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = _merge(value, {}) if isinstance(value, dict) else value
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
