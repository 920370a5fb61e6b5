"""Audio sources and sinks of a call: files (headless) and sound devices (sounddevice / PortAudio).

Every source hands out 20 ms chunks of mono float32 at 48 kHz and records when its first sample was
captured (``start``, on the ``time.monotonic`` clock), so that the mouth time of sample ``p`` is
``start + p / 48000``. Every sink records when each chunk was handed to it, for the latency benchmark.
"""

from __future__ import annotations

import asyncio
import fractions
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from csss_core.audio import read_audio, write_audio

RATE = 48_000
FRAME = 960  # 20 ms, aiortc's Opus frame


def frame_to_mono(frame: Any) -> np.ndarray:
    """A decoded PyAV audio frame (packed or planar, int16 or float) as mono float32 at 48 kHz."""
    a = frame.to_ndarray()
    ch = len(frame.layout.channels)
    x = a.reshape(ch, -1).mean(axis=0) if frame.format.is_planar else a.reshape(-1, ch).mean(axis=1)
    x = x.astype(np.float32)
    if a.dtype == np.int16:
        x /= 32768.0
    if frame.sample_rate != RATE:
        from csss_core.audio import resample

        x = resample(x, frame.sample_rate, RATE)
    return x


class GapFiller:
    """Keeps the received audio on the sender's timeline when packets are lost or arrive too late.

    aiortc's jitter buffer skips a lost packet and hands on the next one; played as it comes, the
    stream would shorten by 20 ms per loss, which a listener hears as a jump and which shifts the
    hidden payload's timing. ``push`` compares each frame's RTP timestamp (``pts``, 1/48000 s, 32-bit,
    wrapping) with the next one expected, fills a gap of up to ``max_gap`` samples with the last frame
    repeated at halving gain (a simple packet-loss concealment), drops a frame that is entirely late,
    and restarts the timeline after a longer jump (a new stream or a long outage).
    """

    def __init__(self, max_gap: int = RATE) -> None:
        self.max_gap = max_gap
        self.expected: int | None = None
        self.last = np.zeros(FRAME, np.float32)
        self.concealed = 0  # samples filled in
        self.late = 0  # frames dropped as late
        self.restarts = 0

    def push(self, pts: int | None, pcm: np.ndarray) -> list[np.ndarray]:
        """The chunks to play for a frame stamped ``pts``: fill-ins first, then the frame (or nothing)."""
        return [c for c, _ in self.push_marked(pts, pcm)]

    def push_marked(self, pts: int | None, pcm: np.ndarray) -> list[tuple[np.ndarray, bool]]:
        """As :meth:`push`, each chunk with ``True`` when it is a fill-in (concealment), not received audio."""
        pcm = np.asarray(pcm, np.float32)
        if pts is None or self.expected is None:
            return self._take(pts, pcm, [])
        gap = (int(pts) - self.expected + 2**31) % 2**32 - 2**31  # signed distance, RTP wrap-around
        if gap < 0:
            if -gap >= len(pcm):
                self.late += 1
                return []
            return self._take(pts, pcm[-gap:], [], shift=-gap)
        if gap > self.max_gap:
            self.restarts += 1
            return self._take(pts, pcm, [])
        fills: list[np.ndarray] = []
        gain, left = 0.5, gap
        while left > 0:
            n = min(left, len(self.last))
            fills.append(self.last[:n] * gain)
            gain *= 0.5
            left -= n
        self.concealed += gap
        return self._take(pts, pcm, fills)

    def _take(self, pts: int | None, pcm: np.ndarray, fills: list[np.ndarray],
              shift: int = 0) -> list[tuple[np.ndarray, bool]]:
        if pts is not None:
            self.expected = (int(pts) + shift + len(pcm)) % 2**32
        if len(pcm):
            self.last = pcm
        out = [(f, True) for f in fills]
        return [*out, (pcm, False)] if len(pcm) else out


def mono_to_frame(y: np.ndarray, pts: int) -> Any:
    """20 ms of mono float audio as an s16 PyAV frame stamped ``pts`` (in 1/48000 s)."""
    import av

    s16 = (np.clip(y, -1.0, 1.0) * 32767.0).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(s16[None, :], format="s16", layout="mono")
    frame.sample_rate = RATE
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, RATE)
    return frame


class FileSource:
    """A file played in real time (paced by the clock), then silence."""

    def __init__(self, path: str | Path, loop_file: bool = False) -> None:
        self.samples, _ = read_audio(path, sample_rate=RATE)
        self.loop_file = loop_file
        self.start: float | None = None
        self._k = 0

    @property
    def ended(self) -> bool:
        """The whole file has been read (never, when looping)."""
        return not self.loop_file and self._k * FRAME >= len(self.samples)

    @property
    def position_s(self) -> float:
        """Seconds read so far."""
        return self._k * FRAME / RATE

    async def read(self) -> np.ndarray:
        """The next 20 ms, returned when its last sample would have been captured."""
        now = time.monotonic()
        if self.start is None:
            self.start = now
        due = self.start + (self._k + 1) * FRAME / RATE
        if due > now:
            await asyncio.sleep(due - now)
        i = self._k * FRAME
        if self.loop_file and len(self.samples):
            idx = (i + np.arange(FRAME)) % len(self.samples)
            out = self.samples[idx]
        else:
            out = self.samples[i : i + FRAME]
            if len(out) < FRAME:
                out = np.concatenate([out, np.zeros(FRAME - len(out), np.float32)])
        self._k += 1
        return out.astype(np.float32)

    def close(self) -> None:
        """Nothing to release."""


class SilenceSource(FileSource):
    """Real-time silence (a listener that does not talk)."""

    def __init__(self) -> None:  # noqa: D107 (no file)
        self.samples = np.zeros(0, np.float32)
        self.loop_file = False
        self.start = None
        self._k = 0

    @property
    def ended(self) -> bool:
        """Silence never ends."""
        return False


class MicSource:
    """The microphone through sounddevice: 20 ms blocks, paced by the device."""

    def __init__(self, device: str | int | None = None) -> None:
        import sounddevice as sd

        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[np.ndarray] = asyncio.Queue(maxsize=50)
        self.start: float | None = None
        self.ended = False
        self.dropped = 0

        def callback(indata: np.ndarray, frames: int, _time: object, status: object) -> None:
            block = indata[:, 0].astype(np.float32).copy()
            self._loop.call_soon_threadsafe(self._put, block)

        self._stream = sd.InputStream(samplerate=RATE, channels=1, dtype="float32", blocksize=FRAME,
                                      device=device, callback=callback)
        self._stream.start()

    def _put(self, block: np.ndarray) -> None:
        if self.start is None:
            self.start = time.monotonic() - len(block) / RATE
        if self._queue.full():
            self._queue.get_nowait()  # the engine fell behind: drop the oldest block, keep latency bounded
            self.dropped += 1
        self._queue.put_nowait(block)

    async def read(self) -> np.ndarray:
        """The next 20 ms block from the device."""
        return await self._queue.get()

    def close(self) -> None:
        """Stop the device stream."""
        self._stream.stop()
        self._stream.close()


class FileSink:
    """Everything heard, written to a file when the call ends; chunk arrival times kept."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._chunks: list[np.ndarray] = []
        self.times: list[tuple[int, float]] = []  # (first sample index, monotonic time) per chunk
        self._n = 0

    def write(self, y: np.ndarray) -> None:
        """Append one chunk (played 'now')."""
        self.times.append((self._n, time.monotonic()))
        self._chunks.append(np.asarray(y, np.float32))
        self._n += len(y)

    def close(self) -> None:
        """Write the file."""
        y = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
        write_audio(self.path, y, RATE)


class SpeakerSink:
    """The speaker through sounddevice, fed from a bounded buffer (silence on underrun)."""

    MAX_BUFFER = RATE // 5  # 200 ms: older audio is dropped rather than letting latency grow

    def __init__(self, device: str | int | None = None) -> None:
        import sounddevice as sd

        self._lock = threading.Lock()
        self._buf = np.zeros(0, np.float32)
        self.underruns = 0
        self.times: list[tuple[int, float]] = []
        self._n = 0

        def callback(outdata: np.ndarray, frames: int, _time: object, status: object) -> None:
            with self._lock:
                take = self._buf[:frames]
                self._buf = self._buf[frames:]
            if len(take) < frames:
                self.underruns += 1
                take = np.concatenate([take, np.zeros(frames - len(take), np.float32)])
            outdata[:, 0] = take

        self._stream = sd.OutputStream(samplerate=RATE, channels=1, dtype="float32", blocksize=FRAME,
                                       device=device, callback=callback)
        self._stream.start()

    def write(self, y: np.ndarray) -> None:
        """Queue one chunk for playback."""
        self.times.append((self._n, time.monotonic()))
        self._n += len(y)
        with self._lock:
            self._buf = np.concatenate([self._buf, np.asarray(y, np.float32)])[-self.MAX_BUFFER :]

    def close(self) -> None:
        """Stop the device stream."""
        self._stream.stop()
        self._stream.close()
