"""The whole sender -> Opus 96k -> receiver path on corpus voices made more like real recordings.

``stego_lock.py --reverb`` puts the *carrier* in a room; in a call or a file round trip the carrier is the
pseudo-voice, which the sender's vocoder renders from the converted features, so a room or background noise
around the real speaker reaches the hidden channel only through the conversion. This runs
``csss_core.roundtrip`` (sender engine with the file as its enrollment, real Opus at 96 kbit/s, receiver
engine) on each voice dry, in a synthetic room (``stego_lock.room``, RT60 0.4 s), with pink background
noise (-50 dBFS RMS) and with both, and prints, per condition, how many locked and when (seconds from the
start; the payload starts at once), and the median GE2E cosine between the (room / noisy) input and its
reconstruction after the lock.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/recording_conditions.py --corpus corpus [--voices 8]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.stego_lock import room  # noqa: E402
from benchmarks.stego_table import carriers  # noqa: E402
from csss_core.anonymizer import Anonymizer  # noqa: E402
from csss_core.audio import INTERNAL_SAMPLE_RATE  # noqa: E402
from csss_core.corpus import Corpus  # noqa: E402
from csss_core.evaluation.attackers import GE2EAttacker  # noqa: E402
from csss_core.roundtrip import roundtrip  # noqa: E402


def pink_noise(x: np.ndarray, dbfs: float, seed: int = 3) -> np.ndarray:
    """``x`` plus 1/f noise of ``dbfs`` dB RMS (re full scale)."""
    n = len(x)
    w = np.fft.irfft(np.fft.rfft(np.random.default_rng(seed).normal(0, 1, n)) / np.sqrt(np.maximum(
        np.arange(n // 2 + 1), 1)), n)
    return (x + w * 10 ** (dbfs / 20) / np.sqrt(np.mean(w**2))).astype(np.float32)


CONDITIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "dry": lambda x: x,
    "room RT60 0.4 s": lambda x: room(x, 0.4),
    "noise -50 dBFS": lambda x: pink_noise(x, -50.0),
    "room + noise": lambda x: pink_noise(room(x, 0.4), -50.0),
}


def main() -> None:
    """Print lock counts, lock times and reconstruction cosines per condition."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="corpus")
    ap.add_argument("--voices", type=int, default=8, help="every other corpus voice, up to this many")
    ap.add_argument("--seconds", type=float, default=20.0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    anon = Anonymizer()
    ge2e = GE2EAttacker()
    voices = carriers(Corpus.load(a.corpus), 2 * a.voices, a.seconds)[::2][: a.voices]
    print("| condition | locked | lock s median / max | GE2E cos input vs reconstruction after the lock (median) |")
    print("|---|---|---|---|")
    for name, make in CONDITIONS.items():
        locks, cos = [], []
        for _, x0 in voices:
            x = make(x0)
            rt = roundtrip(x, bytes([5]) * 32, 3, anonymizer=anon)
            s = rt.seconds_to_lock
            locks.append(np.inf if s is None else s)
            if s is not None and len(x) - (s + 0.5) * INTERNAL_SAMPLE_RATE >= 2 * INTERNAL_SAMPLE_RATE:
                st = int((s + 0.5) * INTERNAL_SAMPLE_RATE)
                cos.append(float(ge2e.embed(x[st:]) @ ge2e.embed(rt.reconstructed[st:])))
        v = np.array(locks)
        ok = int(np.sum(np.isfinite(v)))
        mx = f"{v.max():.1f}" if ok == len(v) else "-"
        c = f"{np.median(cos):.3f}" if cos else "-"
        print(f"| {name} | {ok}/{len(v)} | {np.median(v):.1f} / {mx} | {c} |", flush=True)


if __name__ == "__main__":
    main()
