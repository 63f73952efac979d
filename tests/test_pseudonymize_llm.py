"""What actually reaches the language model: no detected identifier, only placeholders.

A loopback proxy in front of the real llama.cpp server (tests/llm_fixtures.py) records every request body
the appliance sends; the assistant's paths (chat question, suggested questions, topics, summary) run against
it with a transcript full of personal data. Only an explicit reveal sends the real text.
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from appliance.assistant import chat, summaries, topics
from appliance.assistant.llm_client import LlmClient, LlmError
from appliance.config import load_config
from appliance.transcripts import pseudonymize
from appliance.users.accounts import get_user
from services.assistant import AssistantWorker
from tests.llm_fixtures import llm_env
from tests.test_assistant_chat import make_recording

LINES = [
    "Jag heter Mirza Hodžić och min dotter heter Lisa.",
    "Mitt personnummer är 811218-9876 och Lisas samordningsnummer är 811278-9873.",
    "Ring mig på 070-123 45 67 eller mejla mirza.hodzic@example.se.",
    "Vi bor på Storgatan 12 B, 352 30 Växjö, sedan i höstas.",
    "Lisa sover dåligt och skolan har ringt om frånvaron.",
    "Vi ses igen om två veckor och då kommer Per Andersson från skolan.",
]
IDENTIFIERS = ["Mirza", "Hodžić", "Lisa", "811218-9876", "811278-9873", "070-123 45 67", "mirza.hodzic@example.se",
               "Storgatan 12 B", "352 30 Växjö", "Per Andersson"]


class RecordingProxy:
    """Forwards HTTP requests to `upstream` and keeps each request body (decoded JSON)."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.bodies: list[dict] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy.bodies.append(json.loads(body))
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
                conn.request("POST", self.path, body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()  # buffered: the client reads an SSE stream the same either way
                self.send_response(resp.status)
                self.send_header("Content-Type", resp.getheader("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{parts.path}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def sent_text(self) -> str:
        """Every message content the appliance sent, joined."""
        return "\n".join(m["content"] for body in self.bodies for m in body.get("messages", []))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ctx(llm_ctx):
    return llm_ctx


@pytest.fixture
def proxy(llm_server):
    p = RecordingProxy(llm_server)
    yield p
    p.close()


@pytest.fixture
def client(proxy, tmp_path) -> LlmClient:
    cfg = load_config(environ={"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "proxy-cfg"), **llm_env(proxy.url)})
    return LlmClient(cfg.llm)


@pytest.fixture
def rec(ctx, db, users, tmp_path) -> str:
    return make_recording(ctx, db, users["anna"], LINES, tmp_path)


def test_every_request_to_the_model_carries_placeholders_not_identifiers(ctx, db, users, rec, proxy, client):
    anna = get_user(db, users["anna"])
    found = {e.value for e in pseudonymize.sync(db, rec)}
    assert {"811218-9876", "811278-9873", "070-123 45 67", "mirza.hodzic@example.se", "Storgatan 12 B",
            "352 30 Växjö", "Lisa", "Per Andersson"} <= found

    chat.ask(db, client, anna, rec, prompt="Hur sover Lisa och vad sa Mirza?")
    try:
        chat.suggest_questions(db, client, anna, rec)
    except LlmError:
        pass  # the 270M model sometimes proposes nothing; what matters here is what it was sent
    topics.generate(db, client, topics.prepare(db, anna, rec, n_ctx=client.cfg.n_ctx))
    summaries.request_summary(db, anna, rec, "rad")
    assert AssistantWorker(ctx, client=client).run_once()  # the summary worker, through the same proxy
    assert len(proxy.bodies) >= 4
    sent = proxy.sent_text()
    for value in IDENTIFIERS:
        assert value not in sent, value
    for placeholder in ("[PERSON 1]", "[PNR 1]", "[SAMORDNINGSNR 1]", "[TELEFON 1]", "[EPOST 1]", "[ADRESS 1]",
                        "[POSTNR 1]"):
        assert placeholder in sent, placeholder


def test_only_an_explicit_reveal_sends_the_real_text(ctx, db, users, rec, proxy, client):
    anna = get_user(db, users["anna"])
    chat.ask(db, client, anna, rec, prompt="Vad heter dottern?", reveal=True)
    assert "811218-9876" in proxy.sent_text() and "Lisa" in proxy.sent_text()
