"""How good are the assistant's drafts? A Swedish benchmark with a key, run on the real model.

Data (bench/data/assistant/*.json, written for this benchmark, synthetic but realistic): social-services
conversations (child-welfare talks with a parent, a school contact and a youth, income support, a follow-up of an
intervention, violence in a close relationship, addiction care) as timed transcript lines with speakers, each with
a key:

* `facts`: what must appear, the template headings it belongs under (`bbic`: BBIC heading names without the side,
  `journal`, `rad`), the lines that say it, and `match`: groups of word beginnings, every group must occur in a
  statement for it to state the fact (a beginning of six letters or more may also sit inside a compound:
  "kurator" in "skolkuratorn");
* `must_not`: things never said (a sibling, alcohol, a diagnosis …) that a statement must not claim;
* `questions`: chat questions with the lines an answer should cite;
* `rewrite`: a journal-style text about the client (with citations) and the facts a rewrite must keep.

Scores, per template (BBIC, journal note, advice) over the conversations that use it:

* recall: the template's facts stated somewhere in the draft;
* placement: of those, stated under one of the fact's headings;
* cit.prec: citations of statements that state a fact that point at a line saying it (a line of the key, or a line
  whose text matches the fact's words);
* invented: statements that claim a `must_not` thing, or state no fact of the key and share less than half of their
  content words with the whole transcript;
* checker: agreement of the grounding checker (appliance/assistant/grounding.py) with the key, over statements the key
  can judge (supported: states a fact and cites a line saying it; unsupported: invented, or states a fact and
  cites no line saying it); `flagged` is the share the checker flagged;
* s/item: seconds per draft, tok/s: generated tokens per second of generation (after the first token).

Chat: recall = answers stating the expected fact, cit.prec = cited lines among the expected ones (or saying the
fact). Rewrites (the seed's "du-form" and "12-åring" prompts): recall = the source's facts kept, form = du-form
addresses the client as du without naming her / plain language is changed and not harder to read (LIX) than
the source.
Suggested questions: form = share that are Swedish questions about something said in the conversation.

The bench starts the llm unit (services/llm.py) with the appliance's default model unless `--url` names a running
server. It prints one table; `--out FILE` keeps every draft and answer as JSON, `--rescore FILE` scores such a file
again without the model.

Run from the repo root:  .venv/bin/python bench/assistant_quality.py [--only ID,...] [--skip-chat] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.assistant import chat, grounding, summarize  # noqa: E402
from appliance.assistant.llm_client import LlmClient, LlmError  # noqa: E402
from appliance.assistant.statement_stream import StatementStream  # noqa: E402
from appliance.assistant.templates import BUILTIN, Template  # noqa: E402
from appliance.assistant.transcript import NumberedSegment  # noqa: E402
from appliance.config import Config, load_config  # noqa: E402

DATA = ROOT / "bench" / "data" / "assistant"
TEMPLATES = ("bbic", "journal", "rad")
REWRITE_KEYS = ("du", "enkelt")


# ------------------------------------------------------------------------------------------ the key

def load_conversations(only: Iterable[str] | None = None) -> list[dict]:
    convs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(DATA.glob("*.json"))]
    wanted = set(only or ())
    return [c for c in convs if not wanted or c["id"] in wanted]


def segments_of(conv: dict) -> list[NumberedSegment]:
    return [NumberedSegment(ln["n"], ln["n"] - 1, ln["start"], ln["end"], ln["text"], ln["speaker"])
            for ln in conv["lines"]]


def _norm(text: str) -> str:
    return " " + " ".join(re.findall(r"[^\W_]+(?:-[^\W_]+)*", text.lower())) + " "


def _hit(alt: str, text: str) -> bool:
    alt = alt.lower()
    if len(alt) >= 6:  # long enough to be recognised inside a compound ("skolkuratorn")
        return alt in text
    return re.search(r"(?<!\w)" + re.escape(alt), text) is not None


def matches(groups: list[list[str]], text: str) -> bool:
    """Every group has a word beginning that occurs in `text`."""
    t = _norm(text)
    return bool(groups) and all(any(_hit(a, t) for a in g) for g in groups)


def resolve_headings(template: Template, names: list[str]) -> set[str]:
    """The template's headings that the key's names mean ("Hälsa" is BBIC's "Barnets utveckling: Hälsa")."""
    out = set()
    for name in names:
        out |= {h for h in template.headings if h == name or h.endswith(": " + name)}
    return out


def _lexical_support(text: str, transcript_stems: set[str]) -> float:
    words = grounding.content_words(text)
    if not words:
        return 1.0
    return sum(grounding._found(w, transcript_stems) for w in words) / len(words)


# ------------------------------------------------------------------------------------------ scoring

@dataclass
class Score:
    """Counts summed over items; rates computed at the end."""

    items: int = 0
    facts: int = 0
    found: int = 0
    placed: int = 0
    cites: int = 0
    good_cites: int = 0
    statements: int = 0
    invented: int = 0
    judged: int = 0
    agree: int = 0
    flagged: int = 0
    form_n: int = 0
    form_ok: int = 0
    seconds: list[float] = field(default_factory=list)
    tokens: int = 0
    gen_seconds: float = 0.0
    first_words: list[float] = field(default_factory=list)

    def add(self, other: Score) -> None:
        for k, v in vars(other).items():
            if isinstance(v, list):
                getattr(self, k).extend(v)
            else:
                setattr(self, k, getattr(self, k) + v)


@dataclass(frozen=True)
class Judged:
    text: str
    heading: str
    citations: tuple[int, ...]
    facts: tuple[str, ...]      # ids of the key's facts it states
    good_cites: int             # citations pointing at a line that says one of those facts
    invented: bool
    flagged: bool


def judge(conv: dict, text: str, citations: Iterable[int], flagged: bool, heading: str = "") -> Judged:
    lines = {ln["n"]: ln["text"] for ln in conv["lines"]}
    stems = grounding._stems(" ".join(lines.values()))
    facts = [f for f in conv["facts"] if matches(f["match"], text)]
    cites = tuple(dict.fromkeys(int(c) for c in citations))
    good = sum(1 for c in cites if any(c in f["lines"] or (c in lines and matches(f["match"], lines[c]))
                                       for f in facts))
    invented = any(matches(n["match"], text) for n in conv["must_not"]) or (
        not facts and _lexical_support(text, stems) < 0.5)
    return Judged(text, heading, cites, tuple(f["id"] for f in facts), good, invented, flagged)


def _statement_counts(score: Score, judged: list[Judged]) -> None:
    for j in judged:
        score.statements += 1
        score.invented += j.invented
        score.flagged += j.flagged
        if j.facts and j.citations:
            score.cites += len(j.citations)
            score.good_cites += j.good_cites
        bad = j.invented or (bool(j.facts) and j.good_cites == 0)
        good = bool(j.facts) and j.good_cites > 0 and not j.invented
        if bad or good:
            score.judged += 1
            score.agree += j.flagged == bad


def score_draft(conv: dict, template: Template, sections: list[dict]) -> tuple[Score, list[Judged]]:
    """Score one draft: `sections` as SummaryResult.to_json()["sections"]."""
    s = Score(items=1)
    judged = [judge(conv, st["text"], st["citations"], st["status"] != grounding.OK, sec["heading"])
              for sec in sections for st in sec["statements"]]
    keyed = [f for f in conv["facts"] if template.key in f["headings"]]
    s.facts = len(keyed)
    for f in keyed:
        stating = [j for j in judged if f["id"] in j.facts]
        if stating:
            s.found += 1
            right = resolve_headings(template, f["headings"][template.key])
            s.placed += any(j.heading in right for j in stating)
    _statement_counts(s, judged)
    return s, judged


def score_answer(conv: dict, question: dict, statements: list[dict]) -> tuple[Score, list[Judged]]:
    s = Score(items=1, facts=1)
    judged = [judge(conv, st["text"], st["segments"], st["status"] != grounding.OK) for st in statements]
    text = " ".join(st["text"] for st in statements)
    s.found = int(matches(question["match"], text)) if question["match"] else int(
        any(set(j.citations) & set(question["lines"]) for j in judged))
    lines = {ln["n"]: ln["text"] for ln in conv["lines"]}
    for j in judged:
        s.statements += 1
        s.invented += j.invented
        s.flagged += j.flagged
        s.cites += len(j.citations)
        s.good_cites += sum(1 for c in j.citations if c in question["lines"] or (
            question["match"] and c in lines and matches(question["match"], lines[c])))
        bad = j.invented or (bool(j.facts) and j.good_cites == 0)
        good = bool(j.facts) and j.good_cites > 0 and not j.invented
        if bad or good:
            s.judged += 1
            s.agree += j.flagged == bad
    return s, judged


_DU = re.compile(r"(?<!\w)(du|dig|din|ditt|dina)(?!\w)", re.IGNORECASE)


def lix(text: str) -> float:
    """LIX readability (Björnsson): words per sentence + percentage of words longer than six letters."""
    words = re.findall(r"[^\W\d_]+", text)
    sentences = max(1, len(re.findall(r"[.!?]+(?:\s|$)", text.strip() + " ")))
    if not words:
        return 0.0
    return len(words) / sentences + 100 * sum(len(w) > 6 for w in words) / len(words)


def score_rewrite(conv: dict, key: str, statements: list[dict]) -> Score:
    rw = conv["rewrite"]
    text = " ".join(st["text"] for st in statements)
    s = Score(items=1, facts=len(rw["keep"]), form_n=1)
    s.found = sum(matches(groups, text) for groups in rw["keep"])
    if key == "du":
        s.form_ok = int(bool(_DU.search(text)) and rw["client"].lower() not in text.lower())
    else:
        source = " ".join(t for t, _ in rw["source"])
        # plain language: rewritten (the source copied back is no rewrite) and not harder to read
        s.form_ok = int(bool(text.strip()) and " ".join(text.split()) != " ".join(source.split())
                        and lix(text) <= lix(source))
    judged = [judge(conv, st["text"], st["segments"], st["status"] != grounding.OK) for st in statements]
    _statement_counts(s, judged)
    return s


_SWEDISH = re.compile(r"(?<!\w)(hur|vad|vilka|vilken|vilket|varför|när|var|vem|finns|har|är|kan|ska|behöver)(?!\w)",
                      re.IGNORECASE)


def score_suggestions(conv: dict, questions: list[str]) -> Score:
    stems = grounding._stems(" ".join(ln["text"] for ln in conv["lines"]))
    s = Score(items=1)
    for q in questions:
        s.form_n += 1
        grounded = _lexical_support(q, stems) >= 0.5 and bool(grounding.content_words(q))
        s.form_ok += int(q.strip().endswith("?") and len(q.split()) >= 3 and bool(_SWEDISH.search(q)) and grounded)
    s.facts, s.found = 1, int(s.form_ok >= 2)
    return s


# ------------------------------------------------------------------------------------------ running

class Metered:
    """The client, summing generated tokens and generation time of every request (tokens/s)."""

    def __init__(self, client: LlmClient) -> None:
        self.cfg, self._client = client.cfg, client
        self.tokens, self.gen_seconds = 0, 0.0

    def complete(self, *args, **kwargs):
        out = self._client.complete(*args, **kwargs)
        self.tokens += out.completion_tokens
        self.gen_seconds += out.seconds - (out.first_token_seconds or 0.0)
        return out

    def stream(self, *args, **kwargs):
        return self._client.stream(*args, **kwargs)


def run_draft(client: LlmClient, cfg: Config, conv: dict, template: Template) -> dict:
    metered = Metered(client)
    t0 = time.perf_counter()
    try:
        result = summarize.summarize(metered, segments_of(conv), template, cfg.assistant)
        out = result.to_json()
        error = None
    except LlmError as exc:
        out, error = {"sections": []}, str(exc)
    return {"conversation": conv["id"], "template": template.key, "seconds": time.perf_counter() - t0,
            "tokens": metered.tokens, "gen_seconds": metered.gen_seconds, "sections": out["sections"],
            "requests": out.get("requests"), "chunks": out.get("chunks"), "error": error}


def stream_statements(client: LlmClient, messages: list[dict], response_format: dict,
                      segments: dict[int, NumberedSegment], max_tokens: int = chat.ANSWER_TOKENS) -> dict:
    """A chat-style answer as the web streams it: time to the first words on screen, checked statements."""
    reader = StatementStream()
    t0 = time.perf_counter()
    first = first_piece = None
    pieces = 0
    statements = []
    try:
        for piece in client.stream(messages, response_format=response_format, max_tokens=max_tokens):
            pieces += 1
            if first_piece is None:
                first_piece = time.perf_counter() - t0
            for kind, value in reader.feed(piece):
                if kind == "text" and first is None and value.strip():
                    first = time.perf_counter() - t0
                elif kind == "statement":
                    statements += chat.check_statements([value], segments)
        error = None
    except LlmError as exc:
        error = str(exc)
    total = time.perf_counter() - t0
    return {"statements": [st.as_dict() | {"segments": [c.number for c in st.citations]} for st in statements],
            "first_words": first, "seconds": total, "tokens": pieces,
            "gen_seconds": total - (first_piece or total), "error": error}


def stream_request(client: LlmClient, req: chat.ChatRequest) -> dict:
    """A rewrite that is not one grammar-constrained request (chat.preset_rewrite), through chat.stream_answer."""
    t0 = time.perf_counter()
    first = None
    pieces = 0
    error = None
    try:
        for kind, value in chat.stream_answer(client, req):
            if kind == "text":
                pieces += 1
                if first is None and str(value).strip():
                    first = time.perf_counter() - t0
    except LlmError as exc:
        error = str(exc)
    total = time.perf_counter() - t0
    return {"statements": [st.as_dict() | {"segments": [c.number for c in st.citations]} for st in req.statements],
            "first_words": first, "seconds": total, "tokens": pieces if req.one_by_one else 0,
            "gen_seconds": total - (first or total), "error": error}


def run_chat(client: LlmClient, cfg: Config, conv: dict) -> dict:
    segs = segments_of(conv)
    by_number = {s.number: s for s in segs}
    out: dict = {"conversation": conv["id"], "questions": [], "rewrites": {}, "suggestions": None}
    for q in conv["questions"]:
        messages, context = chat.question_messages(segs, q["question"], cfg.llm.n_ctx)
        ans = stream_statements(client, messages, chat.answer_schema([s.number for s in context]), by_number)
        out["questions"].append({"question": q["question"], **ans})
    if "rewrite" in conv:
        source = [(text, tuple(numbers)) for text, numbers in conv["rewrite"]["source"]]
        for key in REWRITE_KEYS:
            ready, one_by_one = chat.preset_rewrite(key, source)
            if ready is None and one_by_one is None:
                messages, context = chat.rewrite_messages(segs, source, chat.REWRITES[key][1], cfg.llm.n_ctx)
                out["rewrites"][key] = stream_statements(client, messages,
                                                         chat.answer_schema([s.number for s in context]), by_number)
            else:  # as the web does it: by rule, or one statement per request
                req = chat.ChatRequest(0, conv["id"], "rewrite", [], {}, by_number, False, ready=ready,
                                       one_by_one=one_by_one)
                out["rewrites"][key] = stream_request(client, req)
    metered = Metered(client)
    t0 = time.perf_counter()
    try:
        reply = metered.complete(chat.suggest_messages(segs, cfg.llm.n_ctx), response_format=chat.SUGGEST_SCHEMA,
                                 max_tokens=300)
        questions, error = chat.parse_suggestions(reply.text), None
    except LlmError as exc:
        questions, error = [], str(exc)
    out["suggestions"] = {"questions": questions, "seconds": time.perf_counter() - t0, "tokens": metered.tokens,
                          "gen_seconds": metered.gen_seconds, "error": error}
    return out


def _timing(s: Score, item: dict) -> None:
    s.seconds.append(item["seconds"])
    s.tokens += item.get("tokens") or 0
    s.gen_seconds += item.get("gen_seconds") or 0.0
    if item.get("first_words") is not None:
        s.first_words.append(item["first_words"])


def score_run(run: dict) -> dict[str, Score]:
    convs = {c["id"]: c for c in load_conversations()}
    rows: dict[str, Score] = {}
    for d in run["drafts"]:
        sc, _ = score_draft(convs[d["conversation"]], BUILTIN[d["template"]], d["sections"])
        _timing(sc, d)
        rows.setdefault(d["template"], Score()).add(sc)
    for c in run.get("chats", []):
        conv = convs[c["conversation"]]
        for q, ans in zip(conv["questions"], c["questions"], strict=True):
            sc, _ = score_answer(conv, q, ans["statements"])
            _timing(sc, ans)
            rows.setdefault("chat", Score()).add(sc)
        for key, rw in c["rewrites"].items():
            sc = score_rewrite(conv, key, rw["statements"])
            _timing(sc, rw)
            rows.setdefault(f"rewrite-{key}", Score()).add(sc)
        if c["suggestions"] is not None:
            sc = score_suggestions(conv, c["suggestions"]["questions"])
            _timing(sc, c["suggestions"])
            rows.setdefault("suggest", Score()).add(sc)
    return rows


def _pct(num: int, den: int) -> str:
    return f"{100 * num / den:5.0f} %" if den else "      –"


def table(rows: dict[str, Score]) -> str:
    head = (f"{'task':<14}{'n':>4}{'recall':>9}{'form':>9}{'cit.prec':>10}{'invented':>10}{'checker':>9}"
            f"{'flagged':>9}{'s/item':>8}{'tok/s':>7}{'1st words':>10}")
    out = [head, "-" * len(head)]
    order = [*TEMPLATES, "chat", *(f"rewrite-{k}" for k in REWRITE_KEYS), "suggest"]
    for name in [k for k in order if k in rows]:
        s = rows[name]
        form = _pct(s.placed, s.found) if name in TEMPLATES else _pct(s.form_ok, s.form_n)
        tps = f"{s.tokens / s.gen_seconds:7.1f}" if s.gen_seconds > 0 else "      –"
        fw = f"{statistics.median(s.first_words):9.1f}s" if s.first_words else "         –"
        out.append(f"{name:<14}{s.items:>4}{_pct(s.found, s.facts):>9}{form:>9}{_pct(s.good_cites, s.cites):>10}"
                   f"{_pct(s.invented, s.statements):>10}{_pct(s.agree, s.judged):>9}{_pct(s.flagged, s.statements):>9}"
                   f"{statistics.median(s.seconds) if s.seconds else 0:8.1f}{tps}{fw}")
    out.append("recall: key facts stated (chat: answers stating the fact; rewrites: facts kept; suggest: conversations "
               "with >= 2 good questions)")
    out.append("form: drafts placement under a right heading; rewrite-du addresses the client as du without her name; "
               "rewrite-enkelt changed and not harder (LIX); suggest good questions")
    out.append("cit.prec: citations pointing at a line that says the fact; invented: claims never said or without "
               "basis in the transcript; checker: grounding checker agrees with the key; flagged: share it flagged")
    out.append("s/item: median seconds per draft/answer; tok/s: generated tokens per second of generation; "
               "1st words: median seconds to the first answer words (streamed)")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------ the llm unit

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_store() -> Path:
    store = os.environ.get("TEST_MODEL_STORE")
    return Path(store) if store else load_config(environ={}).paths.models


def start_llm_unit(env: dict[str, str], log: Path) -> subprocess.Popen:
    """services.llm with `env` (the appliance's config as environment); returns once it answers."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")} | env
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.llm"], cwd=ROOT, env=full, stdout=out,
                                stderr=subprocess.STDOUT)
    client = LlmClient(load_config(environ=env).llm)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"llm unit exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            client.models()
            return proc
        except LlmError:
            time.sleep(0.3)
    proc.kill()
    sys.exit("llm unit did not start")


def bench_env(tmp: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The appliance's config for the bench's llm unit; [llm] and [assistant] overrides in this process's environment
    (e.g. APPLIANCE_LLM__N_THREADS=1) are passed on."""
    port = free_port()
    passed = {k: v for k, v in os.environ.items() if k.startswith(("APPLIANCE_LLM__", "APPLIANCE_ASSISTANT__"))}
    return {**passed, "APPLIANCE_PATHS__STATE_DIR": str(tmp / "state"),
            "APPLIANCE_PATHS__MODELS_DIR": str(model_store()), "APPLIANCE_LLM__PORT": str(port),
            "APPLIANCE_LLM__BASE_URL": f"http://127.0.0.1:{port}/v1", "APPLIANCE_LLM__READ_TIMEOUT_SECONDS": "600",
            **(extra or {})}


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="comma-separated conversation ids")
    ap.add_argument("--templates", default=",".join(TEMPLATES))
    ap.add_argument("--skip-chat", action="store_true", help="drafts only")
    ap.add_argument("--skip-drafts", action="store_true", help="chat, rewrites and suggestions only")
    ap.add_argument("--url", help="use this running OpenAI-compatible server instead of starting the llm unit")
    ap.add_argument("--out", help="write every draft and answer to this JSON file")
    ap.add_argument("--rescore", help="score a file written by --out (no model)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the client's "unreachable" while the llm unit starts is expected
    if args.rescore:
        run = json.loads(Path(args.rescore).read_text(encoding="utf-8"))
        print(f"{args.rescore}: {run.get('model')}, {run.get('load', '')}")
        print(table(score_run(run)))
        return 0
    convs = load_conversations([c for c in args.only.split(",") if c])
    wanted = [t for t in args.templates.split(",") if t]
    with tempfile.TemporaryDirectory(prefix="assistant-bench-") as tmp:
        env = bench_env(Path(tmp))
        if args.url:
            env["APPLIANCE_LLM__BASE_URL"] = args.url
        cfg = load_config(environ=env)
        proc = None if args.url else start_llm_unit(env, Path(tmp) / "llm.log")
        client = LlmClient(cfg.llm)
        run: dict = {"model": cfg.llm.model, "drafts": [], "chats": [], "started": time.time()}
        loads = [os.getloadavg()[0]]

        def save() -> None:  # after every item: a long run that is stopped keeps what it measured
            if args.out:
                Path(args.out).write_text(json.dumps(run, ensure_ascii=False, indent=1), encoding="utf-8")

        try:
            for conv in convs:
                # chat first: the questions share the transcript prefix the drafts then reuse
                if not args.skip_chat:
                    run["chats"].append(run_chat(client, cfg, conv))
                    loads.append(os.getloadavg()[0])
                    save()
                for key in [t for t in conv["templates"] if t in wanted and not args.skip_drafts]:
                    d = run_draft(client, cfg, conv, BUILTIN[key])
                    run["drafts"].append(d)
                    loads.append(os.getloadavg()[0])
                    save()
                    print(f"  {conv['id']:<22} {key:<8} {d['seconds']:6.1f} s "
                          f"{'ERROR ' + d['error'] if d['error'] else ''}", file=sys.stderr, flush=True)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
        run["load"] = (f"1-min load average during the run: median {statistics.median(loads):.2f}, max "
                       f"{max(loads):.2f} on {os.cpu_count()} CPUs")
        save()
    print(f"\nassistant quality: {cfg.llm.model}, {len(convs)} conversations; {run['load']}")
    print(table(score_run(run)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
