"""Real speech features for the speaker encoder (compressor.zoo.speaker_encoder): sentences of the Lee corpus spoken by
espeak-ng in several voices, turned into resemblyzer's mel features and cut into 1.6 s partial utterances.

Needs ``apt-get install -y espeak-ng``. Run: ``.venv/bin/python examples/speech/make_features.py``; writes
``features.npz`` next to this file: ``x`` (N, 160, 40) float16 mel power spectrograms, ``voice`` (N,) the voice index,
and ``voices`` (the espeak-ng voice names).
"""

from __future__ import annotations

import io
import subprocess
import wave
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from compressor.zoo.lee import sentences_text
from compressor.zoo.speaker_encoder import SAMPLE_RATE, mel_spectrogram, normalise_volume, partials

HERE = Path(__file__).resolve().parent
VOICES = ["en-gb", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us+f3", "en-gb+f2", "en-us+m4"]
SENTENCES_PER_VOICE = 2


def speak(text: str, voice: str) -> np.ndarray:
    """16 kHz float audio of ``text`` in ``voice``, leading/trailing silence trimmed."""
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "--stdout", text], capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(wav)) as w:
        rate = w.getframerate()
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0
    audio = resample_poly(audio, SAMPLE_RATE, rate).astype(np.float32)
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return audio[loud[0]:loud[-1] + 1] if len(loud) else audio


def main() -> None:
    texts = [s for s in sentences_text() if 12 <= len(s.split()) <= 40]
    xs, voice_of = [], []
    for v, voice in enumerate(VOICES):
        for text in texts[v * SENTENCES_PER_VOICE:(v + 1) * SENTENCES_PER_VOICE]:
            p = partials(mel_spectrogram(normalise_volume(speak(text, voice))), step=160)  # non-overlapping windows
            xs.append(p)
            voice_of += [v] * len(p)
    x = np.concatenate(xs).astype(np.float16)
    np.savez_compressed(HERE / "features.npz", x=x, voice=np.array(voice_of, dtype=np.int64), voices=np.array(VOICES))
    print(f"{len(x)} partial utterances of {x.shape[1]} frames x {x.shape[2]} mels from {len(VOICES)} voices -> features.npz "
          f"({(HERE / 'features.npz').stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
