"""`appliance summarize`, `appliance llm` and `appliance assistant`: the documentation assistant's commands.

`appliance summarize TRANSCRIPT.json --template bbic [--json]` reads what `appliance transcribe --json` prints
and runs the same code as the assistant worker (appliance.assistant.summarize against the model server at
`llm.base_url`), printing the sections with statements, citations and the grounding checker's flags.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from appliance.config import load_config
from appliance.errors import ApplianceError


def load_transcript_json(path: Path):
    """NumberedSegments from `appliance transcribe --json` output (a clear error for anything else)."""
    from appliance.assistant.transcript import NumberedSegment

    if not path.is_file():
        raise ApplianceError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        segments = data["segments"]
        out = []
        for idx, s in enumerate(segments):
            text = str(s["text"]).strip()
            speaker = s.get("speaker")
            if text:
                out.append(NumberedSegment(idx + 1, idx, float(s["start"]), float(s["end"]), text,
                                           f"Talare {speaker}" if speaker is not None else None))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ApplianceError(f"{path}: not a transcript from `appliance transcribe --json` ({exc})") from exc
    return out


def _cmd_summarize(args: argparse.Namespace) -> int:
    from appliance.assistant import templates
    from appliance.assistant.llm_client import LlmClient
    from appliance.assistant.summarize import summarize

    cfg = load_config(args.config)
    segments = load_transcript_json(Path(args.file))
    template = templates.get(None, cfg, args.template)

    def progress(p: float) -> None:
        if not args.quiet:
            print(f"\r{p * 100:5.1f} %", end="", file=sys.stderr, flush=True)

    result = summarize(LlmClient(cfg.llm), segments, template, cfg.assistant, on_progress=progress)
    if not args.quiet:
        print(file=sys.stderr)
    if args.json:
        json.dump(result.to_json(), sys.stdout, ensure_ascii=False, indent=2)
        print()
        return 0
    print(template.name)
    for heading, statements in result.sections:
        print(f"\n{heading}")
        for s in statements:
            flag = "" if not s.flagged else f"   ⚠ {s.status_text}"
            print(f"  - {s.text} [{', '.join(map(str, s.citations))}]{flag}")
        if not statements:
            print("  (inget)")
    print(f"\n{result.flagged} påstående(n) flaggade; {result.chunks} del(ar), {result.requests} anrop till modellen.")
    return 0


def _cmd_llm(args: argparse.Namespace) -> int:
    from services.llm import main as llm_main

    return llm_main(args.config)


def _cmd_assistant(args: argparse.Namespace) -> int:
    from services.assistant import main as assistant_main

    return assistant_main(args.config)


def register(sub) -> None:
    sub.add_parser("llm", help="run the language-model server (llama.cpp, OpenAI protocol, loopback/socket)"
                   ).set_defaults(fn=_cmd_llm)
    sub.add_parser("assistant", help="run the assistant worker (summaries)").set_defaults(fn=_cmd_assistant)
    s = sub.add_parser("summarize", help="summarise a transcript JSON under a template with the assistant's code")
    s.add_argument("file", help="TRANSCRIPT.json as printed by `appliance transcribe --json`")
    s.add_argument("--template", default="journal",
                   help="bbic, journal, rad, or an office template (file-NAME) from assistant.templates_dir")
    s.add_argument("--json", action="store_true", help="print JSON: sections, statements, citations, checker flags")
    s.add_argument("--quiet", action="store_true", help="no progress on stderr")
    s.set_defaults(fn=_cmd_summarize)
