"""The streaming stage protocol, pipelines, and the streaming-equals-offline check.

A stage is a small object whose state is set in ``__init__``; ``process`` takes
one :class:`~csss_core.audio.AudioChunk` and returns one; ``reset`` restores the
state of a fresh instance; ``latency_s`` is the algorithmic delay it adds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from csss_core.audio import AudioChunk, _ratio, resample_filter


@runtime_checkable
class Stage(Protocol):
    """One step of a streaming pipeline."""

    @property
    def latency_s(self) -> float:
        """Algorithmic delay this stage adds, in seconds."""
        ...

    def process(self, chunk: AudioChunk) -> AudioChunk:
        """Consume one chunk and return the next output chunk."""
        ...

    def reset(self) -> None:
        """Forget all stream state, as if freshly constructed."""
        ...


class Pipeline:
    """A list of stages run in order on fixed-size chunks at one sample rate."""

    def __init__(self, stages: Sequence[Stage], sample_rate: int, chunk_len: int | None = None) -> None:
        self.stages = list(stages)
        self.sample_rate = int(sample_rate)
        self.chunk_len = chunk_len

    @property
    def latency_s(self) -> float:
        """Total algorithmic delay of all stages in seconds."""
        return float(sum(s.latency_s for s in self.stages))

    def process(self, chunk: AudioChunk) -> AudioChunk:
        """Run ``chunk`` through every stage; reject a chunk of the wrong rate or size."""
        if chunk.sample_rate != self.sample_rate:
            raise ValueError(f"pipeline runs at {self.sample_rate} Hz, got a chunk at {chunk.sample_rate} Hz")
        if self.chunk_len is not None and len(chunk) != self.chunk_len:
            raise ValueError(f"pipeline takes chunks of {self.chunk_len} samples, got {len(chunk)}")
        for stage in self.stages:
            chunk = stage.process(chunk)
        return chunk

    def reset(self) -> None:
        """Reset every stage."""
        for stage in self.stages:
            stage.reset()


class StreamingResampler:
    """Causal polyphase resampler with the same filter as :func:`csss_core.audio.resample`.

    Its output equals the offline (zero-phase) resampler's output delayed by
    :attr:`delay_samples` output samples, so ``latency_s`` is that delay.
    Chunks of any length are accepted; output lengths follow the rate ratio.
    """

    def __init__(self, in_sr: int, out_sr: int) -> None:
        self.in_sr = int(in_sr)
        self.out_sr = int(out_sr)
        self.up, self.down = _ratio(self.in_sr, self.out_sr)
        h = resample_filter(self.up, self.down)
        half_len = (len(h) - 1) // 2
        self._latency_s = ((len(h) - 1) / 2) / (self.up * self.in_sr)
        self.delay_samples = half_len // self.down if half_len % self.down == 0 else None
        taps = int(np.ceil(len(h) / self.up))
        padded = np.zeros(taps * self.up)
        padded[: len(h)] = h
        # polyphase[p, j] = h[p + j * up]
        self._poly = padded.reshape(taps, self.up).T.copy()
        self._taps = taps
        self.reset()

    @property
    def latency_s(self) -> float:
        """Group delay of the anti-alias filter in seconds."""
        return self._latency_s

    def reset(self) -> None:
        """Clear the input history and counters."""
        self._hist = np.zeros(0, dtype=np.float64)
        self._n_in = 0
        self._n_out = 0

    def process(self, chunk: AudioChunk) -> AudioChunk:
        """Resample one chunk; returns the output samples that the input so far determines."""
        if chunk.sample_rate != self.in_sr:
            raise ValueError(f"resampler expects {self.in_sr} Hz, got {chunk.sample_rate} Hz")
        x = chunk.samples.astype(np.float64)
        base = self._n_in - len(self._hist)  # global index of buf[0]
        buf = np.concatenate([self._hist, x])
        self._n_in += len(x)
        n_end = (self._n_in * self.up - 1) // self.down + 1 if self._n_in else 0
        n = np.arange(self._n_out, n_end)
        ts = self._n_out / self.out_sr
        if len(n):
            m = n * self.down
            i0 = m // self.up
            phase = m % self.up
            idx = i0[:, None] - np.arange(self._taps)[None, :] - base
            valid = idx >= 0
            vals = np.where(valid, buf[np.clip(idx, 0, len(buf) - 1)], 0.0)
            y = np.einsum("nj,nj->n", self._poly[phase], vals)
        else:
            y = np.zeros(0)
        self._n_out = n_end
        keep = min(len(buf), self._taps + 1)
        self._hist = buf[len(buf) - keep :]
        return AudioChunk(y.astype(np.float32), self.out_sr, ts)


def run_streaming(stage: Stage, x: np.ndarray, sample_rate: int, chunk_len: int) -> np.ndarray:
    """Feed ``x`` through ``stage`` in chunks of ``chunk_len`` samples and concatenate the output."""
    out = []
    for start in range(0, len(x), chunk_len):
        seg = x[start : start + chunk_len]
        out.append(stage.process(AudioChunk(seg, sample_rate, start / sample_rate)).samples)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def streaming_offline_difference(
    make_stage: Callable[[], Stage],
    x: np.ndarray,
    sample_rate: int,
    chunk_len: int,
    offline: Callable[[np.ndarray], np.ndarray] | None = None,
) -> float:
    """Largest absolute difference between streaming and offline output of a stage.

    The streaming run feeds fresh ``make_stage()`` with ``chunk_len``-sample chunks.
    The offline reference is ``offline(x)`` when given, else one fresh stage fed
    the whole signal as a single chunk. Output lengths must agree.

    Raises:
        AssertionError: the lengths differ.
    """
    streamed = run_streaming(make_stage(), x, sample_rate, chunk_len)
    if offline is None:
        whole = make_stage().process(AudioChunk(np.asarray(x, np.float32), sample_rate, 0.0)).samples
    else:
        whole = np.asarray(offline(x), dtype=np.float32)
    if len(streamed) != len(whole):
        raise AssertionError(f"streaming gave {len(streamed)} samples, offline {len(whole)}")
    if len(whole) == 0:
        return 0.0
    return float(np.max(np.abs(streamed.astype(np.float64) - whole.astype(np.float64))))
