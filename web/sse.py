"""Server-sent events for the assistant's long-running answers (chat, topic table of contents).

The model's work runs in a thread that hands events to the response through a queue, so the response can
send a keep-alive comment while the model is silent (a long prompt being read): the browser can tell a slow
model from a dead connection, and nothing between them times the stream out. The work itself is bounded by
the LLM client's timeouts (no answer, or silence, for `llm.read_timeout_seconds` raises LlmUnavailable), and
its failure becomes an `error` event with the message to show; the page then offers a retry. If the browser
goes away, `stop` is set so the work can end early.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator

from appliance.errors import ApplianceError

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 5.0
MSG_FAILED = "Något gick fel i assistenten. Försök igen om en stund; om felet kvarstår, kontakta IT."
HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def event(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def run(work: Callable[[Callable[[dict], None], threading.Event], dict | None],
        finish: Callable[[str | None, bool], None], keepalive: float | None = None) -> Iterator[str]:
    """Stream what `work(emit, stop)` emits as SSE, then a final `done` event (the dict `work` returns, with
    "type": "done") or an `error` event. `finish(error, completed)` runs exactly once at the end, also when the
    browser disconnects mid-stream (completed False), e.g. to store the outcome."""
    keepalive = KEEPALIVE_SECONDS if keepalive is None else keepalive
    q: queue.Queue = queue.Queue()
    stop = threading.Event()
    done_marker = object()

    def target() -> None:
        try:
            result = work(lambda data: q.put(data), stop)
            q.put((done_marker, result or {}))
        except ApplianceError as exc:  # LlmUnavailable and friends: their message is written to be shown
            q.put((done_marker, {"type": "error", "message": str(exc)}))
        except Exception:
            log.exception("assistant stream failed")
            q.put((done_marker, {"type": "error", "message": MSG_FAILED}))

    threading.Thread(target=target, name="sse-work", daemon=True).start()
    completed = False
    error: str | None = None
    try:
        yield ": start\n\n"  # headers and a first byte go out at once: the page knows the request arrived
        while True:
            try:
                item = q.get(timeout=keepalive)
            except queue.Empty:
                yield ": keepalive\n\n"
                continue
            if isinstance(item, tuple) and item and item[0] is done_marker:
                result = item[1]
                if result.get("type") == "error":
                    error = result["message"]
                    finish(error, True)
                    completed = True
                    yield event(result)
                else:
                    finish(None, True)
                    completed = True
                    yield event({"type": "done", **result})
                return
            yield event(item)
    finally:
        stop.set()
        if not completed:  # the browser went away (GeneratorExit) or the server is shutting down
            finish(None, False)
