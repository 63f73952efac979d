"""Where the caseworker waits for the assistant: the first words of a chat answer, and a BBIC draft of a long
conversation, with the appliance's default model on this machine's CPU.

Conversations are built from the benchmark's lines (bench/data/assistant/, retimed back to back): a 5-minute one for
chat, a 20-minute one for the draft. The llm unit (services/llm.py) runs as the appliance runs it, with its prompt
cache; the requests are the ones the web and the assistant worker send (appliance.assistant.chat / summarize
through appliance.assistant.llm_client), the time is taken as the page sees it (the first `text` event of the
statement reader, i.e. the first words on screen).

Chat on the 5-minute conversation:
* cold: the first question, nothing cached;
* warmed: the first question on a recording whose page warmed the cache (chat.warm_messages, sent when the caseworker
  opens the question field) — the warm-up's own time is printed too;
* again: later questions on the same recording (the transcript is read once);
* after other work: a question after a draft of another recording ran in between (the RAM cache keeps both).
The raw library's time to the first token for the cold question (llama-cpp-python in this process, same model,
settings and messages, no cache) is the reference: the ratios say what the cache buys.

BBIC on the 20-minute conversation: total time, requests, how often the progress bar moved (the longest stretch
without a move), against the raw library's time to merely read that transcript once (the floor for any draft).

Run from the repo root:  .venv/bin/python bench/assistant_latency.py [--skip-raw] [--skip-draft]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from assistant_quality import bench_env, load_average, load_conversations, start_llm_unit  # noqa: E402

from appliance.assistant import chat, summarize  # noqa: E402
from appliance.assistant.llm_client import LlmClient  # noqa: E402
from appliance.assistant.statement_stream import StatementStream  # noqa: E402
from appliance.assistant.templates import BUILTIN  # noqa: E402
from appliance.assistant.transcript import NumberedSegment  # noqa: E402
from appliance.config import load_config  # noqa: E402

QUESTIONS = ["Hur sover Leo?", "Var bor Leos pappa?", "Vad sa mamma om ekonomin?", "När är nästa möte?"]


def conversation(minutes: float, skip: int = 0) -> list[NumberedSegment]:
    """The benchmark's lines back to back (starting `skip` conversations in) until `minutes` are filled."""
    convs = load_conversations()
    convs = convs[skip:] + convs[:skip]
    out: list[NumberedSegment] = []
    t = 0.0
    while t < minutes * 60:
        for conv in convs:
            for ln in conv["lines"]:
                if t >= minutes * 60:
                    break
                dur = ln["end"] - ln["start"]
                out.append(NumberedSegment(len(out) + 1, len(out), t, t + dur, ln["text"], ln["speaker"]))
                t += dur + 0.6
    return out


def first_words(client: LlmClient, messages: list[dict], response_format: dict) -> tuple[float, float]:
    """(seconds to the first words on screen, seconds to the whole answer) of one chat answer."""
    reader = StatementStream()
    t0 = time.perf_counter()
    first = None
    for piece in client.stream(messages, response_format=response_format, max_tokens=chat.ANSWER_TOKENS):
        for kind, value in reader.feed(piece):
            if kind == "text" and first is None and str(value).strip():
                first = time.perf_counter() - t0
    return (first if first is not None else float("nan")), time.perf_counter() - t0


def ask(client: LlmClient, segments: list[NumberedSegment], question: str, n_ctx: int) -> tuple[float, float]:
    messages, context = chat.question_messages(segments, question, n_ctx)
    return first_words(client, messages, chat.answer_schema([s.number for s in context]))


def raw_first_token(env: dict[str, str], messages: list[dict], response_format: dict) -> float:
    """llama-cpp-python in this process, the llm unit's settings, no prompt cache: time to the first token."""
    from llama_cpp import Llama

    from models.store import verify_model
    from services.llm import model_settings

    cfg = load_config(environ=env)
    settings = model_settings(cfg.llm, verify_model(cfg.paths.models, cfg.llm.model))
    settings.pop("model_alias", None)
    llm = Llama(model_path=settings.pop("model"), **settings)
    t0 = time.perf_counter()
    for _ in llm.create_chat_completion(messages, max_tokens=1, temperature=0.0, stream=True,
                                        response_format=response_format):
        break
    first = time.perf_counter() - t0
    del llm
    return first


def raw_read_seconds(env: dict[str, str], messages: list[dict]) -> tuple[float, int]:
    """llama-cpp-python in this process: seconds to read (evaluate) the prompt of `messages` once, and its tokens."""
    from llama_cpp import Llama

    from models.store import verify_model
    from services.llm import model_settings

    cfg = load_config(environ=env)
    settings = model_settings(cfg.llm, verify_model(cfg.paths.models, cfg.llm.model))
    settings.pop("model_alias", None)
    llm = Llama(model_path=settings.pop("model"), **settings)
    text = "\n".join(m["content"] for m in messages)
    tokens = llm.tokenize(text.encode("utf-8"))
    t0 = time.perf_counter()
    llm.eval(tokens)
    seconds = time.perf_counter() - t0
    del llm
    return seconds, len(tokens)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--skip-raw", action="store_true", help="no in-process reference runs")
    ap.add_argument("--skip-draft", action="store_true", help="chat only")
    ap.add_argument("--skip-chat", action="store_true", help="the draft only")
    ap.add_argument("--draft-minutes", type=float, default=20)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    five, other, twenty = conversation(5), conversation(5, skip=3), conversation(args.draft_minutes, skip=1)
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="assistant-latency-") as tmp:
        env = bench_env(Path(tmp), {"APPLIANCE_LLM__READ_TIMEOUT_SECONDS": "900"})
        cfg = load_config(environ=env)
        n_ctx = cfg.llm.n_ctx
        print(f"assistant latency: {cfg.llm.model}, n_ctx {n_ctx}, prompt cache {cfg.llm.prompt_cache_mb} MiB; "
              f"{load_average()}")
        proc = start_llm_unit(env, Path(tmp) / "llm.log")
        client = LlmClient(cfg.llm)
        try:
            if not args.skip_chat:
                print(f"\nchat, 5-minute conversation ({len(five)} lines, {five[-1].end / 60:.1f} min): "
                      "seconds to the first words on screen (whole answer)")
                cold = ask(client, five, QUESTIONS[0], n_ctx)
                print(f"  cold, first question            {cold[0]:6.1f} s ({cold[1]:.1f} s)", flush=True)
                again = [ask(client, five, q, n_ctx) for q in QUESTIONS[1:]]
                loads.append(os.getloadavg()[0])
                print(f"  same recording, next questions  {statistics.median(a[0] for a in again):6.1f} s median "
                      f"(each: {', '.join(f'{a[0]:.1f}' for a in again)}; whole "
                      f"{statistics.median(a[1] for a in again):.1f} s)", flush=True)
                t0 = time.perf_counter()
                client.complete(chat.warm_messages(other, n_ctx), max_tokens=1)
                warm_s = time.perf_counter() - t0
                warmed = ask(client, other, "Vad handlar samtalet om?", n_ctx)
                print(f"  warmed page, first question     {warmed[0]:6.1f} s ({warmed[1]:.1f} s); the warm-up "
                      f"itself took {warm_s:.1f} s in the background", flush=True)
                loads.append(os.getloadavg()[0])
            if not args.skip_draft:
                seen: list[tuple[float, float]] = []
                t0 = time.perf_counter()
                result = summarize.summarize(client, twenty, BUILTIN["bbic"], cfg.assistant,
                                             on_progress=lambda v: seen.append((time.perf_counter() - t0, v)))
                total = time.perf_counter() - t0
                loads.append(os.getloadavg()[0])
                moves = [t for t, _ in seen]
                gaps = [b - a for a, b in zip([0.0, *moves], [*moves, total], strict=True)]
                n = sum(len(s) for _, s in result.sections)
                print(f"\nBBIC draft, {args.draft_minutes:.0f}-minute conversation ({len(twenty)} lines): "
                      f"{total:.0f} s, {result.chunks} chunks, {result.requests} requests, {n} statements under "
                      f"{sum(bool(s) for _, s in result.sections)} headings, {result.flagged} flagged; progress moved "
                      f"{len(seen)} times, longest still stretch {max(gaps):.0f} s", flush=True)
            if not args.skip_chat:
                after = ask(client, five, "Vad sa mamma om fotbollen?", n_ctx)
                print(f"  first recording again after other work {after[0]:6.1f} s ({after[1]:.1f} s)", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        if not args.skip_raw:
            print("\nraw llama-cpp-python in this process (same model and settings, no cache):")
            if not args.skip_chat:
                messages, context = chat.question_messages(five, QUESTIONS[0], n_ctx)
                raw = raw_first_token(env, messages, chat.answer_schema([s.number for s in context]))
                print(f"  first token of the cold question {raw:6.1f} s; ratios: appliance cold/raw "
                      f"{cold[0] / raw:.2f}, next questions/raw {statistics.median(a[0] for a in again) / raw:.3f}, "
                      f"warmed/raw {warmed[0] / raw:.3f}")
            if not args.skip_draft:
                build, _ = summarize.map_request(BUILTIN["bbic"], twenty, cfg.assistant)
                read_s, tokens = raw_read_seconds(env, build(BUILTIN["bbic"].headings))
                print(f"  reading the {args.draft_minutes:.0f}-minute transcript once ({tokens} tokens): "
                      f"{read_s:.0f} s ({tokens / read_s:.0f} tokens/s); draft/read {total / read_s:.2f}")
            loads.append(os.getloadavg()[0])
    print(f"\n1-min load average during the run: median {statistics.median(loads):.2f}, max {max(loads):.2f} on "
          f"{os.cpu_count()} CPUs (shared machine: other work slows every figure)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
