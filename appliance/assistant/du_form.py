"""The "du" rewrite ("Byt ut klientens namn till du. Texten ska vara riktad till klienten."), done by rule.

Why not by the model: the embedded 1.5B model copies the text back or turns the wrong person into "du"
("Du berättar att din Lina knuffade henne"; bench/assistant_quality.py measured 0 of 7 with every prompt we
tried). Swedish makes the change regular enough for rules: verbs do not change with the person, so it is the
client's name and the pronouns that stand for her that change, and which form they take depends on the words
around them. What the rules do:

* the client is the person most statements are about (named first, then named at all);
* her name becomes "du" where she is the subject and "dig" after a preposition or as an object
  ("Handläggaren bokar en tid åt dig"); her genitive ("Saras son") becomes din/ditt/dina after the noun's
  gender and number;
* a pronoun of her gender (hon/henne/hennes, han/honom/hans) becomes du/dig/din… only when the nearest person
  named before it who can be meant is the client ("Lina berättar att Daniel knuffade henne" → "dig": Daniel is
  not a "henne"); "sig/sin/sitt/sina" only when the client is the subject of the clause (the nearest person
  before it who is not an object): "Johan berättar att Nora lägger sig" and "Handläggaren ger Johan en tid
  hos sin läkare" keep "sig" and "sin".

Nothing else is touched, so no fact can be lost or added. A text with no client found is returned unchanged
(the caller then asks the model).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from appliance.transcripts import pseudonymize

_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_END = ".!?:;"

PREPOSITIONS = frozenset(
    "åt till med för om hos av från på i mot utan efter inför kring runt bakom framför bredvid genom enligt "
    "trots via under över vid mellan bland jämte angående beträffande".split())
# The first word of a clause that is not its subject: with one of these first, a name after the verb is the
# subject ("Nu bor Sara hos mormor"); otherwise it is an object ("Handläggaren ger Sara en tid").
_ADVERB_STARTS = frozenset(
    "nu sedan då idag igår imorgon ibland just därför dessutom också ofta numera fortfarande hittills tidigare "
    "senare snart redan efteråt först sist varje nästa denna den här förra".split()) | PREPOSITIONS
# Words after which a name begins a (sub)clause as its subject.
_CLAUSE_STARTS = frozenset("att och men eller eftersom när som då så medan innan fast både varken om".split())
# Nouns of the "ett" gender that drafts mention with a possessive ("ditt barn"), and singular nouns that end
# like plurals ("din syster"); any other noun ending in -or/-ar/-er is taken as a plural ("dina föräldrar").
_NEUTER = frozenset(
    "barn hem boende arbete jobb möte hus rum stöd bistånd ärende hyreskontrakt kontrakt konto samtal beslut "
    "körkort nummer telefonnummer behov missbruk beteende mående intyg läkarintyg schema liv mående ansvar "
    "förhållande umgänge samarbete nätverk sjukintyg ekonomiskt försörjningsstöd skolarbete hälsotillstånd "
    "drickande spelande".split())
_SINGULAR_ER = frozenset(
    "syster dotter mor far bror moster faster morbror farbror mormor farmor morfar farfar partner pojkvän "
    "flickvän vän lärare läkare mentor kurator handledare kontaktperson granne kompis".split())
_PLURAL_ENDINGS = ("or", "ar", "er", "na", "ner")

_FEMALE = {"hon": "du", "henne": "dig", "hennes": "POSS"}
_MALE = {"han": "du", "honom": "dig", "hans": "POSS"}
_REFLEXIVE = {"sig": "dig", "sin": "din", "sitt": "ditt", "sina": "dina"}
CLIENT_WORD = "klienten"  # the word "klienten" stands for the client, whoever she is


@dataclass(frozen=True)
class Person:
    start: int
    end: int
    key: str        # the name folded, genitive -s off ("saras" → "sara")
    genitive: bool


def people(text: str) -> list[Person]:
    """The persons named in `text` (pseudonymize's name detector; "klienten" counts as a name for the client)."""
    out = []
    for span in pseudonymize.detect(text):
        if span.kind != "person":
            continue
        first = span.text.split()[0]
        genitive = span.text.endswith("s") and len(span.text) > 3 and first.casefold() not in _first_names_folded()
        key = (first[:-1] if genitive and " " not in span.text else first).casefold()
        out.append(Person(span.start, span.end, key, genitive))
    for m in re.finditer(r"(?<!\w)[Kk]lienten(s?)(?!\w)", text):
        out.append(Person(m.start(), m.end(), CLIENT_WORD, bool(m.group(1))))
    return sorted(out, key=lambda p: p.start)


@cache
def _first_names_folded() -> frozenset[str]:
    return frozenset(n.casefold() for n in pseudonymize.first_names())


@cache
def _detector():
    import gender_guesser.detector as gender_detector  # loads its dictionary: once, and only when used

    return gender_detector.Detector(case_sensitive=False)


def gender(name_key: str) -> str | None:
    """'f', 'm' or None (unknown or used for both) for a first name."""
    g = _detector().get_gender(name_key)
    return {"female": "f", "mostly_female": "f", "male": "m", "mostly_male": "m"}.get(g)


def find_client(statements: Sequence[str]) -> str | None:
    """The name (folded) of the person the statements are about: named first in most statements, then named
    most often; None when no person is named."""
    first, any_ = Counter(), Counter()
    for text in statements:
        found = [p for p in people(text) if p.key != CLIENT_WORD]
        for p in found:
            any_[p.key] += 1
        if found and not text[:found[0].start].strip(" \"'«–-"):
            first[found[0].key] += 1
    if not any_:
        return None
    return max(any_, key=lambda k: (first[k], any_[k]))


def possessive(next_word: str) -> str:
    """din / ditt / dina for the noun after a possessive."""
    w = next_word.casefold()
    if w in _NEUTER:
        return "ditt"
    if w not in _SINGULAR_ER and len(w) > 3 and w.endswith(_PLURAL_ENDINGS):
        return "dina"
    return "din"


def _clause_words_before(text: str, pos: int) -> list[str]:
    """The words of the clause before `pos` (back to the sentence's end or a comma)."""
    start = max(text.rfind(c, 0, pos) for c in _SENTENCE_END + ",")
    return [w.casefold() for w in _WORD.findall(text[start + 1:pos])]


def _name_form(text: str, pos: int) -> str:
    """'du' or 'dig' for the client's name at `pos`."""
    before = _clause_words_before(text, pos)
    if not before:
        return "du"
    prev = before[-1]
    if prev in PREPOSITIONS:
        return "dig"
    if prev in _CLAUSE_STARTS:
        return "du"
    return "du" if before[0] in _ADVERB_STARTS and len(before) <= 3 else "dig"


def _next_word(text: str, pos: int) -> str:
    m = _WORD.search(text, pos)
    return m.group() if m else ""


def _cased(replacement: str, text: str, pos: int) -> str:
    return replacement.capitalize() if pseudonymize.sentence_start(text, pos) else replacement


def rewrite(text: str, client: str, client_gender: str | None = None,
            gender_of: Callable[[str], str | None] = gender) -> str:
    """`text` with the client (`client`, a folded first name) addressed as du."""
    client_gender = client_gender or gender_of(client)
    persons = people(text)
    edits: list[tuple[int, int, str]] = []
    for p in persons:
        if p.key not in (client, CLIENT_WORD):
            continue
        word = possessive(_next_word(text, p.end)) if p.genitive else _name_form(text, p.start)
        edits.append((p.start, p.end, word))
    pronouns = _FEMALE if client_gender == "f" else _MALE if client_gender == "m" else {}
    for m in _WORD.finditer(text):
        w = m.group().casefold()
        if w not in pronouns and w not in _REFLEXIVE:
            continue
        earlier = [p for p in persons if p.end <= m.start()]
        if w in _REFLEXIVE:
            # the clause's subject: the nearest person before it that is not an object (the client's mentions
            # and pronouns count once they became "du", not "dig"/"din": "Handläggaren ger dig … sin läkare")
            subjects = [(p.end, False) for p in earlier if p.key not in (client, CLIENT_WORD)]
            subjects += [(end, True) for _, end, word in edits if end <= m.start() and word == "du"]
            nearest = max(subjects, default=None)
            if nearest and nearest[1]:
                edits.append((m.start(), m.end(), _REFLEXIVE[w]))
            continue
        same_gender = [p for p in earlier if p.key in (client, CLIENT_WORD)
                       or gender_of(p.key) in (client_gender, None)]
        if same_gender and same_gender[-1].key in (client, CLIENT_WORD):
            word = pronouns[w]
            if word == "POSS":
                word = possessive(_next_word(text, m.end()))
            edits.append((m.start(), m.end(), word))
    out = text
    for start, end, word in sorted(edits, reverse=True):
        out = out[:start] + _cased(word, out, start) + out[end:]
    return out


def rewrite_all(statements: Sequence[str]) -> list[str] | None:
    """Every statement addressed to the client, or None when no client is named in them."""
    client = find_client(statements)
    if client is None:
        return None
    return [rewrite(text, client) for text in statements]
