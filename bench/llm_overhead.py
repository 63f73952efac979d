"""Overhead of the appliance's model path against raw llama-cpp-python, measured in the same run.

Appliance path: the `llm` unit (services/llm.py: llama-cpp-python's OpenAI-compatible server, its own process,
loopback HTTP) and our client (appliance/llm_client.py, server-sent events), i.e. what the assistant worker and
the web use. Raw: `llama_cpp.Llama` in this process with the same settings (`services.llm.model_settings`), the
same messages, greedy decoding, seed and repeat penalty, so both produce the same tokens. Interleaved, N times each:

* plain chat answer: tokens/s end to end (completion tokens / request time) and decode tokens/s (after the
  first token), ratio appliance/raw (goal >= 0.9), and whether the texts are identical;
* a structured summary request (the JSON schema of a template, grammar-constrained) through both paths;
* time to first token of a chat answer through the web (Flask app in process, signed-in caseworker,
  POST /recordings/<id>/chat with Accept: text/event-stream, first `text` event), against the raw library's
  time to first token for a prompt of the same size.

Run from the repo root:  .venv/bin/python bench/llm_overhead.py [--repeats 3] [--max-tokens 96]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from assistant_quality import start_llm_unit  # noqa: E402 - the same llm unit start as the quality bench

from appliance.assistant import prompts  # noqa: E402
from appliance.assistant.llm_client import LlmClient  # noqa: E402
from appliance.assistant.summarize import map_request, summary_schema  # noqa: E402
from appliance.assistant.templates import BUILTIN  # noqa: E402
from appliance.assistant.transcript import NumberedSegment  # noqa: E402
from appliance.config import load_config  # noqa: E402

LINES = [
    "Hej, jag heter Anna och jag arbetar som socialsekreterare här på socialtjänsten.",
    "Vi ska prata om barnets skola, familjens ekonomi och hur ni har det hemma.",
    "Mamma berättar att pojken har svårt att sova och att han ofta är hemma från skolan.",
    "Pappa bor i en annan stad och träffar barnen varannan helg.",
    "Hyresvärden har skickat ett brev om hyran som inte är betald för oktober.",
    "Vi bestämmer att vi ses igen om två veckor och att skolan ska kontaktas.",
    "Familjen får information om vilket stöd kommunen kan erbjuda.",
]
QUESTION = "Vad sägs om skolan?"
# llama-cpp-python's server samples with repeat_penalty 1.1 unless a request says otherwise (the library's own
# default is 1.0); the OpenAI protocol has no such field, so the raw side uses the server's value.
SERVER_REPEAT_PENALTY = 1.1


def _segments() -> list[NumberedSegment]:
    return [NumberedSegment(i + 1, i, i * 5.0, i * 5.0 + 4.5, t) for i, t in enumerate(LINES)]


def _messages() -> list[dict]:
    return [prompts.system_message(), {"role": "user", "content": f"{prompts.transcript_block(_segments())}\n\n"
                                                                  f"Handläggarens fråga: {QUESTION}"}]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_run(llm, messages, max_tokens: int, response_format: dict | None = None) -> dict:
    """The raw library: stream a chat completion in process; time to first piece, total, pieces."""
    t0 = time.perf_counter()
    first = None
    pieces = []
    kwargs = {"response_format": response_format} if response_format else {}
    for chunk in llm.create_chat_completion(messages, max_tokens=max_tokens, temperature=0.0, seed=1234,
                                            repeat_penalty=SERVER_REPEAT_PENALTY, stream=True, **kwargs):
        piece = chunk["choices"][0]["delta"].get("content")
        if piece:
            if first is None:
                first = time.perf_counter() - t0
            pieces.append(piece)
    total = time.perf_counter() - t0
    return {"text": "".join(pieces), "tokens": len(pieces), "ttft": first or total, "total": total}


def ours_run(client: LlmClient, messages, max_tokens: int, response_format: dict | None = None) -> dict:
    out = client.complete(messages, max_tokens=max_tokens, temperature=0.0, response_format=response_format)
    return {"text": out.text, "tokens": out.completion_tokens, "ttft": out.first_token_seconds or out.seconds,
            "total": out.seconds}


def _rates(runs: list[dict]) -> tuple[float, float, float]:
    e2e = statistics.median(r["tokens"] / r["total"] for r in runs)
    decode = statistics.median((r["tokens"] - 1) / max(r["total"] - r["ttft"], 1e-6) for r in runs)
    ttft = statistics.median(r["ttft"] for r in runs)
    return e2e, decode, ttft


def compare(name: str, llm, client: LlmClient, messages, max_tokens: int, repeats: int,
            response_format: dict | None = None) -> None:
    raw_runs, our_runs = [], []
    raw_run(llm, messages, 4, response_format)  # warm both (first-call allocations)
    ours_run(client, messages, 4, response_format)
    for _ in range(repeats):
        raw_runs.append(raw_run(llm, messages, max_tokens, response_format))
        our_runs.append(ours_run(client, messages, max_tokens, response_format))
    r_e2e, r_dec, r_ttft = _rates(raw_runs)
    o_e2e, o_dec, o_ttft = _rates(our_runs)
    same = all(a["text"] == b["text"] for a, b in zip(raw_runs, our_runs, strict=True))
    print(f"\n{name}: {statistics.median(r['tokens'] for r in our_runs):.0f} tokens, {repeats} runs each, medians")
    print(f"  raw llama-cpp-python : {r_e2e:7.1f} tok/s end to end, {r_dec:7.1f} tok/s decode, "
          f"first token {r_ttft * 1000:6.0f} ms")
    print(f"  appliance (llm unit) : {o_e2e:7.1f} tok/s end to end, {o_dec:7.1f} tok/s decode, "
          f"first token {o_ttft * 1000:6.0f} ms")
    print(f"  ratio appliance/raw  : {o_e2e / r_e2e:.3f} end to end (goal >= 0.9), {o_dec / r_dec:.3f} decode; "
          f"identical text: {same}")


_FIRST_TEXT = re.compile(r'"text"\s*:\s*"[^"]')


def raw_first_text(llm, messages, response_format) -> float:
    """Raw library: time until the answer's first statement text has begun (what the web's first `text` event
    carries: the JSON preamble `{"statements": [{"text": "` comes first)."""
    t0 = time.perf_counter()
    out = ""
    for chunk in llm.create_chat_completion(messages, max_tokens=64, temperature=0.0, seed=1234, stream=True,
                                            repeat_penalty=SERVER_REPEAT_PENALTY, response_format=response_format):
        out += chunk["choices"][0]["delta"].get("content") or ""
        if _FIRST_TEXT.search(out):
            return time.perf_counter() - t0
    return time.perf_counter() - t0


def web_ttft(env: dict[str, str], llm, repeats: int) -> None:
    """Time to the first streamed text of a chat answer through the web app (in process, Flask client), against
    the raw library on the very messages and JSON schema the web sends (built by appliance.assistant.chat)."""
    from appliance.assistant import chat
    from appliance.platform.context import init_state
    from appliance.ports import Segment
    from appliance.recordings import recordings
    from appliance.transcripts.store import replace_segments
    from appliance.users.accounts import create_user
    from tests.conftest import make_tone
    from tests.web_fixtures import PASSWORD, FakeClock, csrf_from, sign_in
    from web import create_app

    cfg = load_config(environ=env)
    ctx = init_state(cfg)
    conn = ctx.connect()
    user, _ = create_user(conn, "bench", ["caseworker"], password=PASSWORD)
    tone = make_tone(cfg.paths.state_dir / "tone.wav", 0.5)
    rid = recordings.create_from_upload(ctx, conn, user, title="Bench", filename="t.wav", data=tone.read_bytes())
    replace_segments(conn, rid, [Segment(s.start, s.end, s.text) for s in _segments()])
    conn.execute("UPDATE recordings SET status = 'ready', progress = 1 WHERE id = ?", (rid,))
    req = chat.prepare(conn, user, rid, prompt=QUESTION, n_ctx=cfg.llm.n_ctx)  # the web's own messages
    conn.close()
    app = create_app(ctx, {"TESTING": True})
    client = app.test_client()
    sign_in(client, FakeClock(), "bench", {})
    token = csrf_from(client.get(f"/recordings/{rid}").text)
    times, raw_times = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        resp = client.post(f"/recordings/{rid}/chat", data={"csrf_token": token, "question": QUESTION},
                           headers={"Accept": "text/event-stream"}, buffered=False)
        first = None
        for chunk in resp.response:
            text = chunk.decode() if isinstance(chunk, bytes) else chunk
            if re.search(r'"type": ?"text"', text):
                first = time.perf_counter() - t0
                break  # the rest of the answer is not measured: leaving ends the stream (the page's "stop")
        resp.close()
        times.append(first if first is not None else float("nan"))
        raw_times.append(raw_first_text(llm, req.messages, req.response_format))
    web, raw = statistics.median(times), statistics.median(raw_times)
    print(f"\nchat question through the web (Flask app in process, SSE), {repeats} runs, medians")
    print(f"  time to first answer text: web {web * 1000:.0f} ms, raw llama-cpp-python {raw * 1000:.0f} ms "
          f"(same messages and JSON schema); web - raw = {(web - raw) * 1000:.0f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--no-web", action="store_true", help="skip the time-to-first-token through the web")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the client's "not answering yet" warnings while the unit starts

    import llama_cpp

    from models.store import verify_model
    from services.llm import model_settings

    tmp = Path(tempfile.mkdtemp(prefix="llm-bench-"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env.update({"APPLIANCE_PATHS__STATE_DIR": str(tmp / "state"),
                "APPLIANCE_PATHS__MODELS_DIR": str(ROOT / "var" / "models"),
                "APPLIANCE_LLM__PORT": str(port), "APPLIANCE_LLM__BASE_URL": f"http://127.0.0.1:{port}/v1",
                "APPLIANCE_LLM__N_CTX": str(args.n_ctx)})
    cfg = load_config(environ=env)
    proc = start_llm_unit(env, tmp / "llm.log")
    try:
        settings = model_settings(cfg.llm, verify_model(cfg.paths.models, cfg.llm.model))  # what the unit loads
        settings["model_path"] = settings.pop("model")
        settings.pop("model_alias")
        llm = llama_cpp.Llama(**settings)
        client = LlmClient(cfg.llm)
        print(f"model {cfg.llm.model}, n_ctx {cfg.llm.n_ctx}, n_gpu_layers {cfg.llm.n_gpu_layers}, "
              f"threads {cfg.llm.n_threads or 'default'}, {os.cpu_count()} CPUs")
        compare("chat answer (free text)", llm, client, _messages(), args.max_tokens, args.repeats)
        # The assistant's own map request for the journal template (11 headings), grammar-constrained.
        journal = BUILTIN["journal"]
        build, numbers = map_request(journal, _segments(), cfg.assistant)
        response_format = {"type": "json_object", "schema": summary_schema(journal.headings, numbers, cfg.assistant)}
        compare("summary request (journal template, JSON schema)", llm, client, build(journal.headings),
                args.max_tokens * 2, args.repeats, response_format)
        if not args.no_web:
            web_ttft(env, llm, args.repeats)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
