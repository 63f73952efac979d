"""Usage guidelines (riktlinjer) every user accepts before using the appliance; a new version asks again.

The text is UTF-8 plain text: `# ` and `## ` start headings, `- ` starts a list item, blank lines separate
paragraphs. The default ships with the package; an office points `[guidelines] file` at its own text and
bumps `version` whenever the text changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from appliance.config import Config
from appliance.errors import ConfigError

DEFAULT_FILE = "guidelines_sv.txt"


@dataclass(frozen=True)
class Block:
    kind: str  # "h1", "h2", "p" or "ul"
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Guidelines:
    version: str
    blocks: tuple[Block, ...]


def parse(text: str) -> tuple[Block, ...]:
    blocks: list[Block] = []
    para: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(Block("p", (" ".join(para),)))
            para.clear()
        if items:
            blocks.append(Block("ul", tuple(items)))
            items.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            flush()
        elif line.startswith("## ") or line.startswith("# "):
            flush()
            blocks.append(Block("h2" if line.startswith("## ") else "h1", (line.lstrip("#").strip(),)))
        elif line.startswith("- "):
            if para:
                flush()
            items.append(line[2:].strip())
        elif items:
            items[-1] += " " + line
        else:
            para.append(line)
    flush()
    return tuple(blocks)


@lru_cache(maxsize=4)
def _load(path: Path | None, version: str) -> Guidelines:
    if path is None:
        text = resources.files("appliance.data").joinpath(DEFAULT_FILE).read_text(encoding="utf-8")
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"Guidelines file {path} cannot be read as UTF-8 text: {exc}") from exc
    blocks = parse(text)
    if not blocks:
        raise ConfigError(f"Guidelines file {path} is empty")
    return Guidelines(version, blocks)


def load(cfg: Config) -> Guidelines:
    return _load(cfg.guidelines.file, cfg.guidelines.version)


def accepted(cfg: Config, version: str | None) -> bool:
    return version == cfg.guidelines.version
