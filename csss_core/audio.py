"""The one audio chunk type, audio file I/O and resampling.

Everything inside the engine is mono float32 at :data:`INTERNAL_SAMPLE_RATE`
(16 kHz); files of any common format, rate and channel count are converted at
the edges by :func:`read_audio` and :func:`write_audio`.
"""

from __future__ import annotations

import math
import os
import secrets
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import firwin, resample_poly

INTERNAL_SAMPLE_RATE = 16_000
"""The engine's one internal sample rate in Hz."""

CHUNK_MS = 20
"""The engine's fixed chunk length in milliseconds (one Opus frame)."""

MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000
MAX_DURATION_S = 4 * 3600.0
"""Longest file accepted (4 hours); longer input is almost certainly a mistake."""

WRITE_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}


class AudioError(ValueError):
    """Audio that cannot be used: unreadable, empty, silent where speech is needed, or absurd."""


@dataclass(frozen=True)
class AudioChunk:
    """A block of mono float32 samples with its rate and the time of its first sample.

    Attributes:
        samples: 1-D float32 array, nominally in [-1, 1].
        sample_rate: samples per second (Hz).
        timestamp: time of the first sample in seconds since the stream began.
    """

    samples: np.ndarray
    sample_rate: int
    timestamp: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.samples, np.ndarray) or self.samples.ndim != 1:
            raise ValueError("AudioChunk.samples must be a 1-D numpy array")
        if self.samples.dtype != np.float32:
            object.__setattr__(self, "samples", self.samples.astype(np.float32))
        if not MIN_SAMPLE_RATE <= int(self.sample_rate) <= MAX_SAMPLE_RATE:
            raise ValueError(f"sample rate {self.sample_rate} Hz outside [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}]")

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate

    def __len__(self) -> int:
        return len(self.samples)


def _check_signal(x: np.ndarray, sr: int, what: str) -> None:
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise AudioError(f"{what}: sample rate {sr} Hz is outside [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz")
    if x.size == 0:
        raise AudioError(f"{what}: no samples (empty audio)")
    if not np.all(np.isfinite(x)):
        raise AudioError(f"{what}: contains NaN or infinite samples")
    if x.shape[0] / sr > MAX_DURATION_S:
        raise AudioError(f"{what}: {x.shape[0] / sr:.0f} s is longer than the {MAX_DURATION_S:.0f} s limit")


def read_audio(path: str | Path, sample_rate: int | None = INTERNAL_SAMPLE_RATE) -> tuple[np.ndarray, int]:
    """Read a wav/flac/ogg (any rate, any channel count) as mono float32.

    Args:
        path: the file to read.
        sample_rate: resample to this rate in Hz; ``None`` keeps the file's rate.

    Returns:
        ``(samples, sample_rate)`` with ``samples`` a 1-D float32 array.

    Raises:
        AudioError: the file is missing, unreadable, empty, non-finite or absurd.
    """
    p = Path(path)
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, not an audio file")
    if not p.is_file():
        raise AudioError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise AudioError(f"{p}: empty file (0 bytes)")
    try:
        # the header first: refuse an absurd rate or length before reading (and allocating) any samples
        info = sf.info(str(p))
        if info.samplerate > 0 and info.frames / info.samplerate > MAX_DURATION_S:
            raise AudioError(f"{p}: {info.frames / info.samplerate:.0f} s is longer than the "
                             f"{MAX_DURATION_S:.0f} s limit")
        if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
            raise AudioError(f"{p}: sample rate {info.samplerate} Hz is outside "
                             f"[{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz")
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"{p}: not a readable audio file ({exc})") from exc
    except MemoryError as exc:
        raise AudioError(f"{p}: too large to read ({info.frames} frames x {info.channels} channels)") from exc
    _check_signal(data, int(sr), str(p))
    mono = data.mean(axis=1).astype(np.float32)
    if sample_rate is not None and sr != sample_rate:
        mono = resample(mono, int(sr), sample_rate)
        sr = sample_rate
    return mono, int(sr)


def check_output_path(path: str | Path) -> tuple[Path, tuple[str, str]]:
    """The output path and its (format, subtype), or an :class:`AudioError` before any work is done.

    Raises:
        AudioError: the suffix is not one :func:`write_audio` writes, or the path is a folder.
    """
    p = Path(path)
    fmt = WRITE_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise AudioError(f"{p}: unsupported output format; use one of {sorted(WRITE_FORMATS)}")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, not an output file")
    return p, fmt


def write_audio(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono audio as wav (16-bit), flac (16-bit) or ogg (Vorbis), chosen by suffix.

    Samples outside [-1, 1] are clipped rather than wrapped. The file appears complete or not at all
    (written to a temporary name, then renamed).
    """
    p, fmt = check_output_path(path)
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise AudioError(f"{p}: expected mono samples, got shape {x.shape}")
    _check_signal(x, int(sample_rate), str(p))
    p.parent.mkdir(parents=True, exist_ok=True)
    # a temporary name in the same folder, renamed into place: a failure never leaves a partial ``p``
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        sf.write(str(tmp), np.clip(x, -1.0, 1.0), int(sample_rate), format=fmt[0], subtype=fmt[1])
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _ratio(in_sr: int, out_sr: int) -> tuple[int, int]:
    fr = Fraction(int(out_sr), int(in_sr))
    return fr.numerator, fr.denominator


def resample_filter(up: int, down: int) -> np.ndarray:
    """The polyphase low-pass FIR used by both offline and streaming resampling.

    Same design as :func:`scipy.signal.resample_poly` (Kaiser window, beta 5,
    10 zero crossings per side), so the two agree sample for sample.
    """
    max_rate = max(up, down)
    half_len = 10 * max_rate
    h = firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0))
    return (h * up).astype(np.float64)


def resample(x: np.ndarray, in_sr: int, out_sr: int) -> np.ndarray:
    """Resample a 1-D signal offline with zero phase (no delay)."""
    if in_sr == out_sr:
        return np.asarray(x, dtype=np.float32)
    if in_sr <= 0 or out_sr <= 0:
        raise AudioError(f"invalid sample rates {in_sr} -> {out_sr}")
    up, down = _ratio(in_sr, out_sr)
    y = resample_poly(np.asarray(x, dtype=np.float64), up, down, window=resample_filter(up, down) / up)
    return y.astype(np.float32)


def chunk_samples(sample_rate: int = INTERNAL_SAMPLE_RATE, chunk_ms: int = CHUNK_MS) -> int:
    """Samples in one fixed-size chunk at ``sample_rate``."""
    n = sample_rate * chunk_ms / 1000
    if not math.isclose(n, round(n)):
        raise ValueError(f"{chunk_ms} ms is not a whole number of samples at {sample_rate} Hz")
    return int(round(n))
