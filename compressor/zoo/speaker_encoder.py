"""The GE2E speaker encoder of the ``resemblyzer`` wheel (installed ``--no-deps``; only its ``pretrained.pt`` is read):
40 mel channels → 3-layer LSTM(256) → Linear(256) → ReLU → L2 norm, one 256-d embedding per 1.6 s partial utterance
(160 frames of 10 ms).

The features are resemblyzer's: a mel power spectrogram (not log) of 16 kHz audio, 25 ms Hann windows every 10 ms,
40 Slaney-scale mel bands with Slaney normalisation (librosa's defaults), computed here with numpy.
``examples/speech/make_features.py`` speaks sentences with espeak-ng and writes the committed features.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 16000
N_FFT, HOP, N_MELS = 400, 160, 40
PARTIAL_FRAMES = 160


class SpeakerEncoder(nn.Module):
    def __init__(self, mels: int = N_MELS, hidden: int = 256, layers: int = 3, embedding: int = 256):
        super().__init__()
        self.lstm = nn.LSTM(mels, hidden, layers, batch_first=True)
        self.linear = nn.Linear(hidden, embedding)
        self.relu = nn.ReLU()
        # GE2E training's similarity scale and bias: in the checkpoint, unused for embeddings
        self.similarity_weight = nn.Parameter(torch.tensor([10.0]))
        self.similarity_bias = nn.Parameter(torch.tensor([-5.0]))

    def forward(self, mels):
        _, (hidden, _) = self.lstm(mels)
        raw = self.relu(self.linear(hidden[-1]))
        return raw / raw.norm(dim=1, keepdim=True).clamp(min=1e-12)


def speaker_encoder() -> SpeakerEncoder:
    return SpeakerEncoder()


def weights_path() -> Path:
    """resemblyzer's ``pretrained.pt`` (a training checkpoint: the weights are under ``model_state``; saved on CUDA)."""
    from compressor.zoo.paths import package_folder

    return package_folder("resemblyzer", "it installs resemblyzer with --no-deps for its weights") / "pretrained.pt"


def _hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    mel = f / f_sp
    return np.where(f >= min_log_hz, min_log_hz / f_sp + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mel)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filters(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Slaney mel filterbank with Slaney (area) normalisation, (n_mels, 1 + n_fft // 2)."""
    fft_freqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    return (weights * (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]).astype(np.float32)


def mel_spectrogram(wav: np.ndarray) -> np.ndarray:
    """(frames, 40) mel power spectrogram of 16 kHz float audio, as resemblyzer computes it."""
    pad = N_FFT // 2
    x = np.pad(wav.astype(np.float32), pad)
    frames = 1 + (len(x) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    power = np.abs(np.fft.rfft(x[idx] * window, axis=1)) ** 2
    return (power @ mel_filters().T).astype(np.float32)


def normalise_volume(wav: np.ndarray, target_dbfs: float = -30.0) -> np.ndarray:
    """resemblyzer's volume normalisation (raise only) to -30 dBFS."""
    rms = np.sqrt(np.mean(wav.astype(np.float64) ** 2))
    if rms == 0:
        return wav
    gain_db = target_dbfs - 20 * np.log10(rms)
    return wav * (10 ** (gain_db / 20)) if gain_db > 0 else wav


def partials(mel: np.ndarray, step: int = PARTIAL_FRAMES // 2) -> np.ndarray:
    """1.6 s windows (160 frames) every 0.8 s: (n, 160, 40); a short utterance is zero-padded to one window."""
    if len(mel) < PARTIAL_FRAMES:
        mel = np.pad(mel, ((0, PARTIAL_FRAMES - len(mel)), (0, 0)))
    starts = range(0, len(mel) - PARTIAL_FRAMES + 1, step)
    return np.stack([mel[s:s + PARTIAL_FRAMES] for s in starts])
