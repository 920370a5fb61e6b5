"""Classical baseline for the hidden channel: improved spread spectrum (ISS, Malvar & Florencio 2003).

Each bit occupies one block of ``bit_len`` samples. A fixed band-limited pseudo-noise carrier ``p``
(public; privacy rests on the payload's AEAD, not on the carrier) is added with the bit's sign and
an amplitude that follows the host's level, and the host's own projection on ``p`` is removed, so
the receiver's correlation sees the bit and the channel noise but not the speech. The bits are the
payload's repeated frame (:func:`csss_core.payload.frame_bits`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfiltfilt

from csss_core.audio import INTERNAL_SAMPLE_RATE, AudioChunk
from csss_core.payload import PayloadReceiver, ReceiverState


@dataclass(frozen=True)
class SSConfig:
    """Spread-spectrum parameters (samples at 16 kHz, Hz, dB)."""

    bit_len: int = 160  # 10 ms per bit: 100 bit/s
    band: tuple[float, float] = (1500.0, 7000.0)
    strength_db: float = -28.0  # carrier RMS relative to the host block's RMS
    floor_dbfs: float = -55.0  # carrier level in silence
    lam: float = 1.0  # fraction of the host's projection removed (ISS)
    seed: int = 0x55


def carrier(cfg: SSConfig) -> np.ndarray:
    """The unit-RMS, band-limited pseudo-noise carrier of one bit."""
    rng = np.random.default_rng(cfg.seed)
    pn = rng.choice([-1.0, 1.0], size=cfg.bit_len * 4)
    sos = butter(6, [cfg.band[0], cfg.band[1]], btype="band", fs=INTERNAL_SAMPLE_RATE, output="sos")
    p = sosfiltfilt(sos, pn)[cfg.bit_len * 2 : cfg.bit_len * 3]
    p *= np.hanning(cfg.bit_len + 2)[1:-1] ** 0.25  # soft edges: less click at block borders
    return p / np.sqrt(np.mean(p**2))


class SSEmbedStage:
    """Streaming embedder: chunks whose length is a multiple of ``bit_len``; adds no latency."""

    def __init__(self, bits: np.ndarray, cfg: SSConfig = SSConfig()) -> None:
        if len(bits) == 0:
            raise ValueError("nothing to embed")
        self.cfg = cfg
        self.bits = np.asarray(bits, dtype=np.uint8)
        self._p = carrier(cfg)
        self._pp = float(self._p @ self._p)
        self.reset()

    latency_s = 0.0

    def reset(self) -> None:
        """Start again at the first bit."""
        self._k = 0

    def process(self, chunk: AudioChunk) -> AudioChunk:
        """Embed the next bits into ``chunk``."""
        n = self.cfg.bit_len
        if chunk.sample_rate != INTERNAL_SAMPLE_RATE or len(chunk) % n:
            raise ValueError(f"SS embedding takes 16 kHz chunks of a multiple of {n} samples")
        x = chunk.samples.astype(np.float64).reshape(-1, n)
        idx = (self._k + np.arange(len(x))) % len(self.bits)
        sign = 2.0 * self.bits[idx] - 1.0
        rms = np.sqrt(np.mean(x**2, axis=1))
        amp = np.maximum(rms * 10 ** (self.cfg.strength_db / 20), 10 ** (self.cfg.floor_dbfs / 20))
        proj = (x @ self._p) / self._pp
        y = x + ((amp * sign) - self.cfg.lam * proj)[:, None] * self._p[None, :]
        self._k += len(x)
        return AudioChunk(y.ravel().astype(np.float32), chunk.sample_rate, chunk.timestamp)


def embed(x: np.ndarray, bits: np.ndarray, cfg: SSConfig = SSConfig()) -> np.ndarray:
    """Embed the repeated ``bits`` into the whole of ``x`` (16 kHz); same output as streaming."""
    n = cfg.bit_len
    pad = (-len(x)) % n
    xp = np.concatenate([np.asarray(x, np.float32), np.zeros(pad, np.float32)])
    return SSEmbedStage(bits, cfg).process(AudioChunk(xp, INTERNAL_SAMPLE_RATE)).samples[: len(x)]


class SSExtractor:
    """Streaming extractor: finds the bit phase, correlates, and feeds a :class:`PayloadReceiver`."""

    ACQUIRE_S = 1.0  # audio used to choose the bit phase

    def __init__(self, key: bytes | None, cfg: SSConfig = SSConfig()) -> None:
        self.cfg = cfg
        self._p = carrier(cfg)
        self.receiver = PayloadReceiver(key)
        self.reset()

    def reset(self) -> None:
        """Forget the stream."""
        self.receiver.reset()
        self._buf = np.zeros(0)
        self._offset: int | None = None
        self._seen = 0
        self._level = 0.0
        self.seconds_to_lock: float | None = None

    def _soft(self, y: np.ndarray, offset: int) -> tuple[np.ndarray, int]:
        n = self.cfg.bit_len
        m = (len(y) - offset) // n
        blocks = y[offset : offset + m * n].reshape(m, n)
        return blocks @ self._p / n, offset + m * n

    def push(self, samples: np.ndarray) -> ReceiverState:
        """Add received 16 kHz samples."""
        self._seen += len(samples)
        self._buf = np.concatenate([self._buf, np.asarray(samples, np.float64)])
        if self._offset is None:
            if len(self._buf) < self.ACQUIRE_S * INTERNAL_SAMPLE_RATE:
                return self.receiver.state
            scores = []
            for o in range(self.cfg.bit_len):
                s, _ = self._soft(self._buf, o)
                scores.append(float(np.mean(np.abs(s))))  # host cancels only at the true phase
            self._offset = int(np.argmax(scores))
        soft, used = self._soft(self._buf, self._offset)
        self._buf = self._buf[used:]
        self._offset = 0
        if len(soft):
            # one running scale for all bits: per-chunk normalization would erase relative confidence
            self._level = 0.99 * self._level + 0.01 * float(np.mean(np.abs(soft))) if self._level else float(
                np.mean(np.abs(soft)))
            scale = self._level + 1e-12
            before = self.receiver.state.opened
            state = self.receiver.push(soft / scale)
            if before is None and state.opened is not None and state.bits_to_lock is not None:
                self.seconds_to_lock = (self._seen - len(self._buf)) / INTERNAL_SAMPLE_RATE
        return self.receiver.state
