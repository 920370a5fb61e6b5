"""The call channel as a file-level function: the real Opus codec (libopus through PyAV).

Settings match aiortc's encoder (48 kHz, stereo s16, 20 ms frames, application "voip", 96 kbps by
default). Packet loss drops whole 20 ms packets; the decoder is then told nothing, as when aiortc's
jitter buffer skips a lost packet, and the gap is filled with silence.
"""

from __future__ import annotations

import fractions

import numpy as np

from csss_core.audio import INTERNAL_SAMPLE_RATE, resample

OPUS_RATE = 48_000
OPUS_FRAME = 960  # 20 ms at 48 kHz


def opus_roundtrip(x: np.ndarray, sr: int = INTERNAL_SAMPLE_RATE, bitrate: int = 96_000, loss: float = 0.0,
                   seed: int = 0) -> np.ndarray:
    """Encode ``x`` with Opus and decode it again; returns audio at ``sr``, time-aligned with ``x``.

    Args:
        x: mono float samples.
        sr: their rate in Hz.
        bitrate: Opus target bit rate in bit/s (aiortc uses 96000).
        loss: fraction of 20 ms packets dropped at random (0..1).
        seed: seed of the loss pattern.
    """
    import av

    if not 0.0 <= loss < 1.0:
        raise ValueError("loss must be in [0, 1)")
    y48 = resample(np.asarray(x, np.float32), sr, OPUS_RATE)
    n = len(y48)
    pad = (-n) % OPUS_FRAME
    pcm = np.concatenate([y48, np.zeros(pad + OPUS_FRAME, np.float32)])  # one extra frame flushes lookahead
    s16 = (np.clip(pcm, -1, 1) * 32767).astype(np.int16)

    tb = fractions.Fraction(1, OPUS_RATE)
    enc = av.CodecContext.create("libopus", "w")
    enc.bit_rate = int(bitrate)
    enc.format = "s16"
    enc.layout = "stereo"
    enc.sample_rate = OPUS_RATE
    enc.time_base = tb
    enc.options = {"application": "voip", "frame_duration": "20"}
    dec = av.CodecContext.create("libopus", "r")
    dec.format = "s16"
    dec.layout = "stereo"
    dec.sample_rate = OPUS_RATE

    rng = np.random.default_rng(seed)
    out = np.zeros(len(pcm) + 4 * OPUS_FRAME, np.float32)
    packets = []
    for i in range(0, len(s16), OPUS_FRAME):
        block = np.repeat(s16[i : i + OPUS_FRAME][None, :], 2, axis=0).T.reshape(1, -1)  # interleaved stereo
        frame = av.AudioFrame.from_ndarray(block, format="s16", layout="stereo")
        frame.sample_rate = OPUS_RATE
        frame.pts = i
        frame.time_base = tb
        packets += list(enc.encode(frame))
    packets += list(enc.encode(None))
    for p in packets:
        if p.pts is None:
            continue
        if loss > 0 and rng.random() < loss:
            continue
        for f in dec.decode(p):
            # a packet's pts already accounts for the encoder's look-ahead (pre-skip): its samples
            # belong at input time pts, which is negative for the first packet
            arr = f.to_ndarray().reshape(-1, 2).mean(axis=1).astype(np.float32) / 32768.0
            start = int(f.pts if f.pts is not None else p.pts)
            if start < 0:
                arr, start = arr[-start:], 0
            seg = arr[: max(0, len(out) - start)]
            out[start : start + len(seg)] = seg
    y = out[:n]
    return resample(y, OPUS_RATE, sr)
