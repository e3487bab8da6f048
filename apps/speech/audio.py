"""Audio files in and out, at the model's sample rate (16 kHz mono float32 in [-1, 1]).

Reading goes through PyPI ``soundfile`` (libsndfile: WAV, FLAC, OGG ...). A file at another rate
is resampled with ``torchaudio.functional.resample`` so every caller gets the same rate. Problems a
user can fix (missing, corrupt, stereo, empty) raise :class:`AudioError` with a short reason, which
the manifest validator turns into a counted skip instead of a crash deep inside training, and the
inference commands into a reported skip of that one file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional

from core.errors import DataError
from core.io import atomic_write

SAMPLE_RATE = 16000


class AudioError(DataError):
    """An audio file cannot be used. ``str(err)`` names the file; ``reason`` is the short kind of
    problem (missing, unreadable, not mono, empty, too short) that skip reports count."""

    def __init__(self, message: str, reason: str = "unusable audio"):
        super().__init__(message)
        self.reason = reason


def audio_info(path: str | Path) -> tuple[int, int, int]:
    """``(sample_rate, frames, channels)`` from the file header, without decoding the samples."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"missing audio file: {path}", "missing")
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"unreadable audio file: {path} ({err})", "unreadable") from err
    return info.samplerate, info.frames, info.channels


def read_audio(path: str | Path, rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Mono samples of ``path`` as a float32 ``[T]`` tensor at ``rate`` Hz."""
    file_rate, frames, channels = audio_info(path)
    if channels != 1:
        raise AudioError(f"{path}: {channels} channels, expected mono", "not mono")
    if frames == 0:
        raise AudioError(f"{path}: empty audio (0 samples)", "empty")
    try:
        samples, _ = soundfile.read(str(path), dtype="float32", always_2d=False)
    except (soundfile.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"unreadable audio file: {path} ({err})", "unreadable") from err
    audio = torch.from_numpy(np.ascontiguousarray(samples))
    if file_rate != rate:
        audio = torchaudio.functional.resample(audio, file_rate, rate)
    return audio


def write_wav(path: str | Path, audio: torch.Tensor | np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write mono ``audio`` as 16-bit PCM WAV; atomic (temp file + rename), so readers never see half a file."""
    path = Path(path)
    samples = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
    atomic_write(path, lambda tmp: soundfile.write(tmp, np.clip(samples, -1.0, 1.0), rate, subtype="PCM_16", format="WAV"))
