"""A small client for the OpenAI chat-completions protocol (the llm unit, or any on-prem server IT points
`llm.base_url` at: vLLM, Triton's OpenAI frontend, llama.cpp's server).

Standard library only (http.client), so the web may use it: no ML imports here. Every request streams
(server-sent events), also `complete`: the read timeout then means "the server sent nothing for this
long" instead of "the whole answer took this long", so a slow but working model is never cut off while
a dead or hung one is noticed in seconds. Connection problems and timeouts raise `LlmUnavailable` with a
message a caseworker can act on; request and answer text is never logged.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

from appliance.config import LlmConfig
from appliance.errors import ApplianceError
from appliance.ports import Completion, Message

log = logging.getLogger(__name__)

MSG_UNAVAILABLE = ("Språkmodellen svarar inte just nu. Försök igen om en stund; "
                   "om felet kvarstår, kontakta IT (tjänsten llm).")
MSG_TIMEOUT = "Språkmodellen svarade inte i tid. Försök igen om en stund; om felet kvarstår, kontakta IT."
MSG_TOO_LONG = "Texten är för lång för språkmodellen. Välj en kortare del eller en mall med färre rubriker."
MSG_BAD_REPLY = "Språkmodellen gav ett oväntat svar. Försök igen; om felet kvarstår, kontakta IT."


class LlmError(ApplianceError):
    """The model server answered, but not usefully (an error status, a malformed reply)."""


class LlmUnavailable(LlmError):
    """The model server cannot be reached or did not answer in time: the page offers a retry."""


class LlmContextExceeded(LlmError):
    """The request does not fit the model's context window."""




class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over the llm unit's Unix socket (`base_url = "unix:/run/…/llm.sock"`)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class LlmClient:
    """The `ChatModel` port over HTTP (TCP or a Unix socket)."""

    def __init__(self, llm: LlmConfig) -> None:
        self.cfg = llm
        if llm.base_url.startswith("unix:"):
            self._unix, self._scheme, self._netloc, self._prefix = llm.base_url[len("unix:"):], "http", "", "/v1"
        else:
            parts = urlsplit(llm.base_url)
            self._unix, self._scheme, self._netloc, self._prefix = None, parts.scheme, parts.netloc, parts.path
        self._prefix = self._prefix.rstrip("/")

    # ------------------------------------------------------------------------------------ transport

    def _connection(self) -> http.client.HTTPConnection:
        timeout = self.cfg.connect_timeout_seconds
        if self._unix is not None:
            return _UnixHTTPConnection(self._unix, timeout)
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._netloc, timeout=timeout, context=ssl.create_default_context())
        return http.client.HTTPConnection(self._netloc, timeout=timeout)

    def _open(self, method: str, path: str, body: dict | None = None):
        conn = self._connection()
        try:
            conn.connect()
            conn.sock.settimeout(self.cfg.read_timeout_seconds)  # from now on: silence longer than this fails
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json", "Accept": "text/event-stream, application/json"}
            conn.request(method, self._prefix + path, body=payload, headers=headers)
            resp = conn.getresponse()
        except TimeoutError as exc:
            conn.close()
            log.warning("llm request timed out (%s)", type(exc).__name__)
            raise LlmUnavailable(MSG_TIMEOUT) from exc
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            log.warning("llm server unreachable at %s (%s)", self.cfg.base_url, type(exc).__name__)
            raise LlmUnavailable(MSG_UNAVAILABLE) from exc
        if resp.status >= 400:
            detail = _error_detail(resp)
            conn.close()
            # The status only: another OpenAI-compatible server (vLLM, Triton) may echo the prompt in its error text.
            log.warning("llm server answered %s (%d characters of error text, not logged)", resp.status, len(detail))
            if resp.status == 400 and ("context" in detail.lower() or "exceed" in detail.lower()):
                raise LlmContextExceeded(MSG_TOO_LONG)
            if resp.status in (502, 503, 504):
                raise LlmUnavailable(MSG_UNAVAILABLE)
            raise LlmError(MSG_BAD_REPLY)
        return conn, resp

    # ------------------------------------------------------------------------------------ API

    def _body(self, messages: list[Message], *, max_tokens: int | None, temperature: float | None,
              response_format: dict | None, stop: list[str] | None) -> dict:
        body: dict = {"model": self.cfg.model, "messages": messages, "stream": True,
                      "max_tokens": max_tokens or self.cfg.max_tokens,
                      "temperature": self.cfg.temperature if temperature is None else temperature,
                      "seed": self.cfg.seed}
        if response_format is not None:
            body["response_format"] = response_format
        if stop:
            body["stop"] = stop
        return body

    def stream_events(self, messages: list[Message], *, max_tokens: int | None = None,
                      temperature: float | None = None, response_format: dict | None = None,
                      stop: list[str] | None = None) -> Iterator[dict]:
        """The parsed server-sent events of a streaming chat completion (chunks as JSON objects)."""
        body = self._body(messages, max_tokens=max_tokens, temperature=temperature,
                          response_format=response_format, stop=stop)
        conn, resp = self._open("POST", "/chat/completions", body)
        try:
            while True:
                try:
                    raw = resp.readline()
                except TimeoutError as exc:
                    log.warning("llm stream stalled for %.0f s", self.cfg.read_timeout_seconds)
                    raise LlmUnavailable(MSG_TIMEOUT) from exc
                except (OSError, http.client.HTTPException) as exc:
                    raise LlmUnavailable(MSG_UNAVAILABLE) from exc
                if not raw:
                    return  # server closed the stream (some servers omit [DONE])
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue  # blank separators, ": ping" comments, event names
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    event = json.loads(data)
                except ValueError as exc:
                    raise LlmError(MSG_BAD_REPLY) from exc
                if "error" in event:
                    log.warning("llm stream error: %.200s", str(event["error"]))
                    raise LlmError(MSG_BAD_REPLY)
                yield event
        finally:
            conn.close()

    def stream(self, messages: list[Message], **kwargs) -> Iterator[str]:
        """The answer's text, piece by piece as the model writes it (for chat answers in the browser)."""
        for event in self.stream_events(messages, **kwargs):
            for choice in event.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    yield piece

    def complete(self, messages: list[Message], *, response_format: dict | None = None,
                 max_tokens: int | None = None, temperature: float | None = None,
                 stop: list[str] | None = None, on_piece: Callable[[str], None] | None = None) -> Completion:
        """The whole answer. `response_format` {"type": "json_object", "schema": {...}} constrains the output
        on servers that support it (llama.cpp's grammar, vLLM's guided decoding). `on_piece` sees the text as it
        comes (progress of a long answer)."""
        started = time.monotonic()
        first: float | None = None
        pieces: list[str] = []
        finish: str | None = None
        usage_tokens: int | None = None
        for event in self.stream_events(messages, max_tokens=max_tokens, temperature=temperature,
                                        response_format=response_format, stop=stop):
            if event.get("usage"):
                usage_tokens = event["usage"].get("completion_tokens")
            for choice in event.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    if first is None:
                        first = time.monotonic() - started
                    pieces.append(piece)
                    if on_piece is not None:
                        on_piece(piece)
                finish = choice.get("finish_reason") or finish
        return Completion("".join(pieces), finish, usage_tokens or len(pieces), first, time.monotonic() - started)

    def models(self) -> list[str]:
        """The model names the server offers (a cheap health check: `appliance doctor`)."""
        conn, resp = self._open("GET", "/models")
        try:
            data = json.loads(resp.read() or b"{}")
        except (ValueError, OSError) as exc:
            raise LlmError(MSG_BAD_REPLY) from exc
        finally:
            conn.close()
        return [m.get("id", "") for m in data.get("data", [])]


def _error_detail(resp: http.client.HTTPResponse) -> str:
    try:
        raw = resp.read(4096).decode("utf-8", "replace")
        data = json.loads(raw)
        err = data.get("error", data.get("detail", raw))
        return str(err.get("message", err) if isinstance(err, dict) else err)
    except (ValueError, OSError, AttributeError):
        return ""


def client_for(llm: LlmConfig) -> LlmClient:
    return LlmClient(llm)
