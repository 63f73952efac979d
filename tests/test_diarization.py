"""Diarization on real audio: an espeak-ng Swedish dialogue of two voices, the shared two-speaker recording with
its reference RTTM and real AMI meeting excerpts (DER, pyannote.metrics), a long meeting whose speakers must keep
their numbers, the speakers hint, the pipeline and the asr worker (speakers stored, a diarization failure still
delivers the transcript, provisional speakers while a live recording goes on)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.config import DiarizationConfig, load_config
from appliance.platform import audit
from appliance.platform.context import init_state
from appliance.ports import SAMPLE_RATE, DiarizeOptions, Segment, SpeakerTurn
from appliance.recordings import recordings
from appliance.recordings.audio import decode_audio
from appliance.transcripts import speakers
from appliance.users import accounts
from models import load_transcriber
from services.asr import AsrWorker
from services.transcription import UnavailableDiarizer, diarize_stored, options_for, transcribe_audio
from tests.conftest import AMI_EXCERPTS, PYANNOTE_SAMPLE

# Two espeak-ng voices, clearly apart in timbre and pitch, taking turns (a social worker and a mother).
VOICES = {"handläggare": ("sv+m3", "40"), "mamma": ("sv+f4", "75")}
DIALOGUE = [
    ("handläggare", "Hej och välkommen, jag heter Anna och jag är socialsekreterare här."),
    ("mamma", "Tack, jag heter Maria och jag är mamma till Olle."),
    ("handläggare", "Vi ska prata om hur Olle har det i skolan just nu."),
    ("mamma", "Han har svårt att sova och är ofta hemma från skolan."),
]
PAUSE_S = 0.6
SAMPLE = PYANNOTE_SAMPLE


@pytest.fixture(scope="module")
def transcriber(model_store):
    return load_transcriber(load_config(environ={}).asr, model_store)


@pytest.fixture(scope="session")
def dialogue(tmp_path_factory) -> tuple[Path, list[tuple[float, float, str]]]:
    """A 16 kHz wav of DIALOGUE and who speaks when: [(start, end, role)]."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.fail("espeak-ng and sox are needed: `make test` installs them")
    tmp = tmp_path_factory.mktemp("dialogue")
    pause = tmp / "pause.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", str(pause), "trim", "0", str(PAUSE_S)], check=True)
    parts, truth, t = [], [], 0.0
    for i, (role, text) in enumerate(DIALOGUE):
        voice, pitch = VOICES[role]
        raw, line = tmp / f"raw{i}.wav", tmp / f"line{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-p", pitch, "-s", "150", "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", str(line)], check=True)
        seconds = float(subprocess.run(["soxi", "-D", str(line)], check=True, capture_output=True,
                                       text=True).stdout)
        truth.append((t, t + seconds, role))
        parts += [str(line), str(pause)]
        t += seconds + PAUSE_S
    out = tmp / "dialogue.wav"
    subprocess.run(["sox", *parts, str(out)], check=True)
    return out, truth


def _speaker_of(turns: list[SpeakerTurn], start: float, end: float) -> int:
    """The speaker covering most of [start, end]."""
    share: dict[int, float] = {}
    for t in turns:
        share[t.speaker] = share.get(t.speaker, 0.0) + max(0.0, min(end, t.end) - max(start, t.start))
    return max(share, key=share.get)


def test_two_voices_get_two_labels(diarizer, dialogue):
    path, truth = dialogue
    result = diarizer.diarize(decode_audio(path.read_bytes()), DiarizeOptions())  # count estimated
    assert result.num_speakers == 2
    labels = {role: {_speaker_of(result.turns, s, e) for s, e, r in truth if r == role} for role in VOICES}
    assert labels["handläggare"] == {1} and labels["mamma"] == {2}  # numbered by first appearance
    # Turns lie on the speech: nothing labelled in the pauses' middles, every line mostly covered.
    for s, e, _role in truth:
        covered = sum(max(0.0, min(e, t.end) - max(s, t.start)) for t in result.turns)
        assert covered > 0.8 * (e - s)


def test_the_hint_is_honoured(diarizer, dialogue):
    """The caseworker's count merges voices down to it; it does not invent a third speaker out of two clearly
    different voices (that split a real speaker on AMI excerpts where the others say a word or two)."""
    audio = decode_audio(dialogue[0].read_bytes())
    one = diarizer.diarize(audio, DiarizeOptions(num_speakers=1))
    assert one.num_speakers == 1 and {t.speaker for t in one.turns} == {1}
    assert diarizer.diarize(audio, DiarizeOptions(num_speakers=2)).num_speakers == 2
    assert diarizer.diarize(audio, DiarizeOptions(num_speakers=3)).num_speakers == 2


def test_one_voice_is_one_speaker(diarizer, sv_long_clip):
    result = diarizer.diarize(decode_audio(sv_long_clip.read_bytes()), DiarizeOptions())
    assert result.num_speakers == 1 and result.turns


def test_silence_has_no_speakers(diarizer, tmp_path):
    path = tmp_path / "silence.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", str(path), "trim", "0", "3"], check=True)
    result = diarizer.diarize(decode_audio(path.read_bytes()), DiarizeOptions())
    assert result.turns == [] and result.num_speakers == 0


def test_shared_two_speaker_sample_der(diarizer):
    """The real two-speaker recording against its reference: DER (collar 0.25 s, scored over the reference's
    extent) measured 0.094; the bound of 0.2 fails when diarization breaks (one speaker everywhere: 0.48)."""
    from pyannote.core import Annotation
    from pyannote.core import Segment as Span
    from pyannote.metrics.diarization import DiarizationErrorRate

    reference = Annotation()
    for line in (SAMPLE / "sample.rttm").read_text().splitlines():
        f = line.split()
        reference[Span(float(f[3]), float(f[3]) + float(f[4]))] = f[7]
    result = diarizer.diarize(decode_audio((SAMPLE / "sample.wav").read_bytes()), DiarizeOptions())
    hypothesis = Annotation()
    for t in result.turns:
        hypothesis[Span(t.start, t.end)] = t.speaker
    der = DiarizationErrorRate(collar=0.25)(reference, hypothesis, uem=reference.get_timeline().extent())
    assert result.num_speakers == 2
    assert der < 0.2, der


def _der(reference, turns, uem, detailed: bool = False):
    from pyannote.core import Annotation
    from pyannote.core import Segment as Span
    from pyannote.metrics.diarization import DiarizationErrorRate

    hypothesis = Annotation()
    for i, t in enumerate(turns):
        hypothesis[Span(t.start, t.end), i] = t.speaker
    return DiarizationErrorRate(collar=0.25)(reference, hypothesis, uem=uem, detailed=detailed)


# Real meetings (AMI, 3-4 speakers talking over each other, far from the microphone): the four excerpts with the
# most speakers and overlap. The old Resemblyzer path scored 0.46, 0.56, 0.62 and 0.33 on them (pooled about 0.5).
AMI_TEST = ("trn00", "trn04", "trn08", "trn09")


def test_real_meetings_der_bound(diarizer):
    """Pooled DER over AMI excerpts with the count estimated stays within the issue's goal (0.35), and little of
    it is speech invented from room noise (false alarm)."""
    from pyannote.database.util import load_rttm, load_uem

    refs, uems = load_rttm(AMI_EXCERPTS / "train.rttm"), load_uem(AMI_EXCERPTS / "train.uem")
    sums = {"missed detection": 0.0, "false alarm": 0.0, "confusion": 0.0, "total": 0.0}
    for uri in AMI_TEST:
        result = diarizer.diarize(decode_audio((AMI_EXCERPTS / f"{uri}.flac").read_bytes()), DiarizeOptions())
        d = _der(refs[uri], result.turns, uems[uri], detailed=True)
        for k in sums:
            sums[k] += d[k]
        assert 2 <= result.num_speakers <= 4, (uri, result.num_speakers)  # 3 or 4 talk in each: within +-1
    der = (sums["missed detection"] + sums["false alarm"] + sums["confusion"]) / sums["total"]
    assert der <= 0.35, sums
    assert sums["false alarm"] / sums["total"] <= 0.05, sums


def test_a_long_meeting_keeps_its_speakers(diarizer, monkeypatch):
    """Three minutes of the two-speaker recording played over and over: every repeat's speakers keep their
    numbers from the first minute to the last, also when the clustering sees only a spread of the embeddings
    (max_cluster_windows, what a 90-minute meeting hits) and the rest take the nearest speaker."""
    import numpy as np
    from pyannote.core import Annotation
    from pyannote.core import Segment as Span

    monkeypatch.setattr(diarizer, "config", DiarizationConfig(max_cluster_windows=100))
    one = decode_audio((SAMPLE / "sample.wav").read_bytes())
    length = len(one) / SAMPLE_RATE
    repeats = 6
    lines = [line.split() for line in (SAMPLE / "sample.rttm").read_text().splitlines()]
    reference = Annotation()
    for r in range(repeats):
        for i, f in enumerate(lines):
            start = float(f[3]) + r * length
            reference[Span(start, start + float(f[4])), f"{r}-{i}"] = f[7]
    result = diarizer.diarize(np.tile(one, repeats), DiarizeOptions())
    assert result.num_speakers == 2
    # Who each reference speaker is in each repeat (the label overlapping them most there).
    names = sorted({f[7] for f in lines})
    seen = []
    for r in range(repeats):
        window = Span(r * length, (r + 1) * length)
        label = {}
        for name in names:
            overlap: dict[int, float] = {}
            for seg in reference.crop(window).label_timeline(name):
                for t in result.turns:
                    o = min(seg.end, t.end) - max(seg.start, t.start)
                    if o > 0:
                        overlap[t.speaker] = overlap.get(t.speaker, 0.0) + o
            label[name] = max(overlap, key=overlap.get)
        seen.append(tuple(label[n] for n in names))
    assert len(set(seen)) == 1 and len(set(seen[0])) == 2, seen
    assert _der(reference, result.turns, reference.get_timeline().extent()) < 0.2


def test_assign_takes_the_speaker_with_most_overlap():
    turns = [SpeakerTurn(0.0, 2.0, 3), SpeakerTurn(2.0, 5.0, 1), SpeakerTurn(9.0, 10.0, 2)]
    segs = [Segment(0.0, 1.8, "a"), Segment(1.5, 4.0, "b"), Segment(5.3, 5.9, "c"), Segment(7.0, 7.5, "d"),
            Segment(10.2, 11.0, "e")]
    # 3 first → 1; 1 → 2; "c" overlaps nothing but is 0.3 s after a turn; "d" is far from every turn; 2 → 3.
    assert speakers.assign(segs, turns) == [1, 2, 2, None, 3]
    assert speakers.assign(segs, []) == [None] * 5


def test_pipeline_labels_segments(transcriber, diarizer, dialogue):
    path, truth = dialogue
    transcript = transcribe_audio(transcriber, path.read_bytes(), options_for(load_config(environ={}).asr),
                                  diarizer=diarizer, diarize_options=DiarizeOptions())
    assert transcript.diarization == "done" and transcript.speakers == 2
    for seg in transcript.segments:
        mid = (seg.start + seg.end) / 2
        role = min(truth, key=lambda r: 0 if r[0] <= mid <= r[1] else min(abs(mid - r[0]), abs(mid - r[1])))[2]
        assert seg.speaker == (1 if role == "handläggare" else 2), (seg.start, seg.end, seg.speaker)
    doc = transcript.to_json_dict()
    assert doc["speakers"] == 2 and {s["speaker"] for s in doc["segments"]} == {1, 2}


@pytest.fixture
def worker_app(tmp_path, model_store):
    return init_state(load_config(environ={"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "state"),
                                           "APPLIANCE_PATHS__MODELS_DIR": str(model_store)}))


def _queued(app, clip: Path, user: accounts.User | None = None, speakers_hint: int | None = None):
    conn = app.connect()
    if user is None:
        user, _ = accounts.create_user(conn, "anna", ["caseworker"])
    rid = recordings.create_from_upload(app, conn, user, title="Samtal", filename=clip.name,
                                        data=clip.read_bytes(), speakers=speakers_hint)
    conn.close()
    return rid, user


def test_worker_stores_speakers_and_a_failure_still_delivers(worker_app, transcriber, diarizer, dialogue):
    rid, user = _queued(worker_app, dialogue[0], speakers_hint=2)
    assert AsrWorker(worker_app, transcriber, worker_id="w1", diarizer=diarizer).run_once()
    conn = worker_app.connect()
    segs = segs_first = recordings.transcript_segments(conn, rid)
    assert {s.speaker for s in segs} == {1, 2} and segs[0].speaker_name == "Talare 1"
    assert speakers.diarization(conn, rid) == "done"
    assert [s.number for s in speakers.list_speakers(conn, rid)] == [1, 2]

    # The diarizer could not be loaded (UnavailableDiarizer raises in every job): the transcript is
    # delivered without speakers, and the failure is recorded on the recording and in the audit log.
    other, _ = _queued(worker_app, dialogue[0], user)
    assert AsrWorker(worker_app, transcriber, worker_id="w2", diarizer=UnavailableDiarizer("test")).run_once()
    rec = recordings.get_recording(conn, user, other)
    assert rec.status == "ready"
    segs = recordings.transcript_segments(conn, other)
    assert segs and all(s.speaker is None and s.speaker_name == "" for s in segs)
    assert speakers.diarization(conn, other) == "failed"
    assert audit.entries(conn, action="recording.diarize", result="failed")

    # Labelling a stored transcript afterwards (what a live recording, transcribed stretch by stretch, needs):
    # the same lines get the same speakers as in one piece; a failure there changes nothing.
    assert diarize_stored(worker_app, UnavailableDiarizer("test"), other) == "failed"
    assert all(s.speaker is None for s in recordings.transcript_segments(conn, other))
    assert diarize_stored(worker_app, diarizer, other) == "done"
    assert speakers.diarization(conn, other) == "done"
    assert [s.speaker for s in recordings.transcript_segments(conn, other)] == [s.speaker for s in segs_first]


def test_short_audio_windows(diarizer):
    """Shorter than one embedding window (1.6 s): padded, one speaker, no error."""
    import numpy as np

    t = np.arange(int(0.8 * SAMPLE_RATE)) / SAMPLE_RATE
    burst = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    result = diarizer.diarize(burst, DiarizeOptions())
    assert result.num_speakers <= 1


def test_a_finished_live_recording_is_diarized(worker_app, transcriber, diarizer, dialogue):
    """Live transcripts are written stretch by stretch, each stretch's lines with provisional speakers (shown while
    recording); once final, the worker labels the whole recording, which settles them."""
    import numpy as np

    from appliance.recordings import live

    conn = worker_app.connect()
    user, _ = accounts.create_user(conn, "anna", ["caseworker"])
    rid = live.start(worker_app, conn, user, title="Hembesök", source="browser", consent_confirmed=True)
    audio = np.concatenate([decode_audio(dialogue[0].read_bytes()), np.zeros(2 * SAMPLE_RATE, np.float32)])
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    step = int(2.5 * SAMPLE_RATE) * 2
    for seq, i in enumerate(range(0, len(pcm), step)):
        live.append_chunk(worker_app, conn, rid, seq, pcm[i:i + step])
    worker = AsrWorker(worker_app, transcriber, worker_id="live", diarizer=diarizer)
    while worker.run_live_once():  # still recording: the dialogue, then silence, is a finished stretch
        pass
    assert recordings.get_recording(conn, user, rid).status == "recording"
    provisional = [s.speaker for s in recordings.transcript_segments(conn, rid)]
    assert set(provisional) == {1, 2}, provisional  # both voices told apart while the recording goes on
    live.stop(worker_app, conn, user, rid)
    while worker.run_live_once():
        pass
    assert recordings.get_recording(conn, user, rid).status == "ready"
    assert speakers.diarization(conn, rid) is None  # not yet: the transcript was made in pieces
    assert worker.run_diarize_once() and not worker.run_diarize_once()  # once per recording
    assert speakers.diarization(conn, rid) == "done"
    settled = [s.speaker for s in recordings.transcript_segments(conn, rid)]
    assert settled[:len(provisional)] == provisional and set(settled) == {1, 2}  # settled, the same


def test_live_speakers_keep_their_numbers_from_step_to_step():
    """A step's speakers take the numbers of the stored lines they overlap; a speaker who overlaps none is new."""
    from services.live_speakers import match

    stored = [Segment(0.0, 4.0, "", speaker=2), Segment(4.5, 8.0, "", speaker=1)]
    # The stretch's own numbering (by first appearance there) differs from the transcript's.
    turns = [SpeakerTurn(0.5, 4.0, 1), SpeakerTurn(4.6, 8.0, 2), SpeakerTurn(9.0, 12.0, 3), SpeakerTurn(12.5, 14, 1)]
    assert match(turns, stored, first_free=3) == {1: 2, 2: 1, 3: 3}
    assert match(turns, [], first_free=1) == {1: 1, 2: 2, 3: 3}


def test_weights_are_checked_before_loading(model_store, tmp_path):
    """The weights are an embedded model (models/manifest.toml): a changed file is refused with a fix-it hint."""
    import shutil

    from appliance.errors import ModelError
    from models import diarize_campplus

    segmentation, embedding = diarize_campplus.weight_files(model_store)  # the installed ones match
    assert segmentation.is_file() and embedding.is_file()
    copy = tmp_path / "store"
    shutil.copytree(model_store / "diarization-campplus", copy / "diarization-campplus")
    with open(copy / "diarization-campplus" / diarize_campplus.SEGMENTATION, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01")
    with pytest.raises(ModelError, match="SHA-256|does not match|changed"):
        diarize_campplus.weight_files(copy)
    with pytest.raises(ModelError):
        diarize_campplus.weight_files(tmp_path / "empty")
