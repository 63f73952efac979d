"""The plain-language rewrite ("Använd ett språk som inte är formellt och som kan läsas av en 12-åring"):
one statement per request, and a guard that keeps the statement as it was unless the rewrite lost nothing.

Why one statement at a time, without the transcript: given the whole transcript and an answer to rewrite, the
embedded 1.5B model copies the answer back (0 of 7 changed in bench/assistant_quality.py). Asked about one
sentence, with two worked examples as earlier turns of the chat, it does simplify, but it also drops facts
("två dagar i veckan" → "i veckan"), makes words up ("heldas", "jönjouren") or loops ("snabbt snabbt …").
So every rewrite passes `accept` before it is shown, and a statement that fails keeps its source text (and its
citations, which a one-sentence rewrite keeps by construction). The guard asks that:

* names, placeholders ("[PERSON 1]"), numbers, weekdays and months of the source are all still there, and the
  rewrite brings none of its own;
* words that carry who said it, a negation or a plan ("berättar", "inte", "ska") are kept;
* each content word of the source survives, at least as part of a new word ("läkarintyg" → "intyg från
  läkaren"), unless it is very common ("gång", "natt"): the model's rewrites most often go wrong by leaving
  one out. Jargon is no exception, since a rare word is as often the fact itself ("kvinnojouren") as a
  formality; what the rule lets through is plainer wording around the facts;
* each word the rewrite brings in is a common Swedish word (wordfreq's Zipf frequency ≥ 4: what a
  12-year-old reads every day) or a form of a word in the source;
* it does not loop and is not much longer than the source.
"""

from __future__ import annotations

import re
from functools import cache

from appliance.transcripts import pseudonymize
from appliance.transcripts.search import stem

INSTRUCTION_KEY = "enkelt"
MIN_COMMON_ZIPF = 4.0   # new words must be at least this common (Zipf scale: 4 = once per 100 000 words)
COMMON_ZIPF = 5.0       # a source word may only be dropped if it is about this common ("gång", "går", "natt")
CONTENT_MIN_LEN = 4
SHARED = 5              # letters a new word must share with a source word to carry it on ("rapport", "intyg")

SYSTEM = ("Du skriver om meningar så att en 12-åring förstår dem. Använd korta meningar och vanliga ord i stället "
          "för svåra myndighetsord. Behåll alla uppgifter: namn, tider, platser och siffror. Det som står inom "
          "hakparentes, till exempel [PERSON 1], skrivs av exakt. Svara bara med den omskrivna texten.")
# Worked examples, shown as earlier turns of the chat. They simplify boldly on purpose: with gentler ones the
# model copies the statement back; what it gets wrong when bold, `accept` catches.
EXAMPLES = (
    ("[PERSON 1] har beviljats ekonomiskt bistånd för hyra under innevarande månad.",
     "[PERSON 1] får pengar till hyran den här månaden."),
    ("Olle uppvisar koncentrationssvårigheter i skolsituationen enligt mentor.",
     "Mentorn säger att Olle har svårt att koncentrera sig i skolan."),
)

_TOKEN = re.compile(r"\[[A-ZÅÄÖ]+(?: [A-Z]?\d+)?\]|\d+(?:[.,:]\d+)*|[^\W\d_]+(?:-[^\W\d_]+)*")
_NUMBER_WORDS = frozenset(
    "två tre fyra fem sex sju åtta nio tio elva tolv tretton fjorton femton sexton sjutton arton nitton tjugo "
    "trettio fyrtio femtio sextio hundra tusen halv halva halvtid heltid första tredje fjärde femte sjätte sjunde "
    "åttonde nionde tionde elfte tolfte trettonde nittonde tjugonde varannan varje".split())
# Words whose loss changes what a statement says: who says it (reported, not established), negation, plans.
_KEEP = frozenset("inte aldrig ingen inget inga utan berättar säger uppger menar tycker tror anser beskriver känner "
                  "vill ska skulle kan kunde måste behöver".split())
_DAYS_MONTHS = ("måndag", "tisdag", "onsdag", "torsdag", "fredag", "lördag", "söndag", "januari", "februari",
                "mars", "april", "maj", "juni", "juli", "augusti", "september", "oktober", "november", "december")


def messages(text: str) -> list[dict]:
    """The chat for rewriting one statement (already pseudonymized as the request needs)."""
    out = [{"role": "system", "content": SYSTEM}]
    for source, rewritten in EXAMPLES:
        out += [{"role": "user", "content": f"Mening: {source}"}, {"role": "assistant", "content": rewritten}]
    out.append({"role": "user", "content": f"Mening: {text}"})
    return out


def max_tokens(text: str) -> int:
    return 40 + len(text) // 2


@cache
def _zipf(word: str) -> float:
    from wordfreq import zipf_frequency  # its word lists load on first use

    return zipf_frequency(word, "sv")


def _tokens(text: str) -> list[tuple[str, bool]]:
    """(token, whether it starts a sentence)."""
    return [(m.group(), pseudonymize.sentence_start(text, m.start())) for m in _TOKEN.finditer(text)]


def _is_fact_token(token: str, sentence_start: bool) -> bool:
    """A token the rewrite must keep (and may not invent): a placeholder, number, name, weekday or month."""
    folded = token.casefold()
    return (token.startswith("[") or token[0].isdigit() or folded in _NUMBER_WORDS
            or folded.startswith(_DAYS_MONTHS) or (token[0].isupper() and not sentence_start))


def _same_word(a: str, b: str) -> bool:
    """Two forms of one word ("fredag"/"fredagen", "vecka"/"veckor"), by the search's Swedish stemmer; a compound's
    other last part is another word ("fritidsgården"/"fritidsledaren")."""
    a, b = a.casefold(), b.casefold()
    return a == b or stem(a) == stem(b)


def _shares_part(word: str, others: list[str]) -> bool:
    w = word.casefold()
    parts = {w[i:i + SHARED] for i in range(len(w) - SHARED + 1)}
    return any(p in o.casefold() for o in others for p in parts)


def _loops(words: list[str]) -> bool:
    return any(words[i].casefold() == words[i + 1].casefold() == words[i + 2].casefold()
               for i in range(len(words) - 2))


def accept(source: str, rewritten: str) -> str | None:
    """The rewrite, tidied, when it keeps every fact of `source` and uses plain words; None otherwise."""
    text = " ".join(rewritten.split()).strip().strip('"')
    text = re.sub(r"^(?:Mening|Text|Omskriven mening)\s*:\s*", "", text, flags=re.IGNORECASE)
    if not text or len(text) > 2 * len(source) + 40:
        return None
    src, new = _tokens(source), _tokens(text)
    src_words, new_words = [t for t, _ in src], [t for t, _ in new]
    if _loops(new_words):
        return None
    src_facts = [t for t, start in src if _is_fact_token(t, start)]
    src_facts += [span.text.split()[0] for span in pseudonymize.detect(source) if span.kind == "person"]
    new_facts = [t for t, start in new if _is_fact_token(t, start)]
    if any(not any(_same_word(f, n) and f[0] == n[0] for n in new_words) for f in src_facts):
        return None  # a name, number or date lost
    if any(not any(_same_word(f, s) for s in src_words) for f in new_facts):
        return None  # one brought in
    brought = [w for w in new_words if not any(_same_word(w, s) for s in src_words)]
    for word in src_words:
        if any(_same_word(word, n) for n in new_words) or word[0].isupper() or word.startswith("["):
            continue
        if word.casefold() in _KEEP:
            return None  # who said it, a negation or a plan gone
        if len(word) >= CONTENT_MIN_LEN and _zipf(word.casefold()) < COMMON_ZIPF and not _shares_part(word, brought):
            return None  # a content word gone, and no new word carries it on
    for word in new_words:
        if word.startswith("[") or word[0].isdigit() or any(_same_word(word, s) for s in src_words) \
                or _shares_part(word, src_words):  # a part of a source word ("intyg" of "läkarintyg")
            continue
        if _zipf(word.casefold()) < MIN_COMMON_ZIPF:
            return None  # not a plain word, or not a word at all
    return text
