"""A long Swedish conversation made with espeak-ng, for the long-audio tests and benches: 40 distinct
sentences of a social-services meeting (about 3 minutes 20 seconds), with where each one lies."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from appliance.ports import SAMPLE_RATE
from appliance.recordings.audio import decode_audio
from tests.conftest import speak_swedish

SENTENCES = [
    "Hej och välkommen, i dag ska vi prata om hur det går för familjen.",
    "Jag heter Anna och jag arbetar som socialsekreterare på kommunen.",
    "Mamma berättar att pojken har svårt att sova på nätterna.",
    "Han är ofta trött på morgonen och kommer för sent till skolan.",
    "Pappa bor i en annan stad och träffar barnen varannan helg.",
    "Skolan har hört av sig flera gånger under hösten.",
    "Läraren säger att pojken är snäll men har svårt att koncentrera sig.",
    "Vi pratar om vad som skulle kunna hjälpa honom i vardagen.",
    "Mamma tycker att det vore bra med mer stöd i klassrummet.",
    "Hon vill också ha hjälp med ekonomin eftersom pengarna inte räcker.",
    "Vi går igenom vilka kostnader familjen har varje månad.",
    "Hyran är hög och det är svårt att hitta en billigare lägenhet.",
    "Jag berättar om det ekonomiska bistånd som kommunen kan erbjuda.",
    "Vi bestämmer att mamma ska skicka in en ansökan nästa vecka.",
    "Vi pratar också om fritiden och vad pojken tycker om att göra.",
    "Han spelar fotboll två gånger i veckan och tycker mycket om det.",
    "Mamma säger att tränaren är ett bra stöd för honom.",
    "Vi kommer överens om att jag ska kontakta skolan och höra hur de ser på saken.",
    "Mamma vill att pappa också ska vara med på nästa möte.",
    "Jag lovar att skicka en kallelse till båda föräldrarna.",
    "Vi ses igen om två veckor på samma tid här på kontoret.",
    "Om något händer innan dess kan mamma ringa mig på telefon.",
    "Jag skriver en anteckning om samtalet i journalen i dag.",
    "Innan vi slutar vill jag fråga hur du själv mår just nu.",
    "Mamma säger att hon är trött men att hon orkar för barnens skull.",
    "Hon har en syster som bor nära och som hjälper till ibland.",
    "Systern hämtar ofta barnen från förskolan på fredagar.",
    "Vi pratar om att det kan finnas samtalsstöd för föräldrar.",
    "Mamma tycker att det låter bra och vill veta mer.",
    "Jag ger henne en broschyr om familjebehandling.",
    "Den lilla flickan går på förskolan och trivs där.",
    "Personalen på förskolan säger att hon leker mycket med de andra barnen.",
    "Vi ser inga skäl till oro när det gäller flickan.",
    "Pojken har däremot behov av mer stöd både hemma och i skolan.",
    "Vi kommer att göra en plan tillsammans med skolan.",
    "Planen ska följas upp efter en månad.",
    "Mamma får en kopia av planen när den är klar.",
    "Har du några frågor innan vi avslutar samtalet i dag?",
    "Nej, jag tror att vi har pratat om det viktigaste.",
    "Tack för att du kom hit, vi hörs snart igen.",
]


def words_of(text: str) -> list[str]:
    """Lower-case words without punctuation (for counting and WER)."""
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


def long_conversation(tmp: Path, rounds: int = 1) -> tuple[np.ndarray, list[tuple[int, int]], list[str]]:
    """Swedish speech (espeak-ng): the sentences `rounds` times, half a second between them (one round is
    about 3 minutes 20 seconds); where each sentence lies (samples) and its text."""
    pause = np.zeros(SAMPLE_RATE // 2, np.float32)
    parts, spans, at = [], [], 0
    texts = SENTENCES * rounds
    for i, text in enumerate(texts):
        speech = decode_audio(speak_swedish(text, tmp / f"s{i:02d}").read_bytes())
        parts += [speech, pause]
        spans.append((at, at + len(speech)))
        at += len(speech) + len(pause)
    return np.concatenate(parts), spans, texts


def conversation_of(tmp: Path, minutes: float) -> tuple[np.ndarray, str]:
    """About `minutes` of the conversation (whole sentences, repeated as needed) and the text that was spoken."""
    rounds = int(np.ceil(minutes * 60 / 190)) + 1
    audio, spans, texts = long_conversation(tmp, rounds)
    keep = [i for i, (_a, b) in enumerate(spans) if b <= minutes * 60 * SAMPLE_RATE] or [0]
    end = spans[keep[-1]][1] + SAMPLE_RATE // 2
    return audio[:end], " ".join(texts[i] for i in keep)
