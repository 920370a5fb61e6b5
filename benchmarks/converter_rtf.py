"""Real-time factor and latency of the streaming converter on one CPU thread.

Runs, side by side in one process, the vocoder alone (copy synthesis) and the full converter
(class-conditional mapping to a GAN pseudo-speaker) in 20 ms chunks, and prints per-utterance
medians: RTF = processing seconds / audio seconds. Also prints the algorithmic latency.

    .venv/bin/python benchmarks/converter_rtf.py [--corpus corpus] [--utts 10] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from csss_core.anonymizer import Anonymizer
from csss_core.audio import AudioChunk, read_audio
from csss_core.converter import ConverterStage, FrameMapper, Offsets
from csss_core.corpus import Corpus
from csss_core.speaker import SpeakerEmbedding
from csss_core.vocoder import VocoderStage


def stream_seconds(stage: VocoderStage | ConverterStage, x: np.ndarray) -> float:
    """Wall seconds to push ``x`` through ``stage`` in 320-sample chunks."""
    n = len(x) - len(x) % 320
    t0 = time.perf_counter()
    for i in range(0, n, 320):
        stage.process(AudioChunk(x[i : i + 320], 16000, i / 16000))
    return time.perf_counter() - t0


def main() -> None:
    """Print the benchmark table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="corpus")
    ap.add_argument("--utts", type=int, default=10)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    torch.set_num_threads(1)
    corpus = Corpus.load(a.corpus)
    anon = Anonymizer(asv_check=False)
    utts = corpus.split("trial")[:: max(1, len(corpus.split("trial")) // a.utts)][: a.utts]
    rows = []
    for u in utts:
        x, _ = read_audio(corpus.path(u))
        dur = len(x) / 16000
        src = anon.embed_speaker(x)
        tgt = SpeakerEmbedding.from_vector(anon.gan.sample(1)[0], anon.cb.k)
        conv = ConverterStage(FrameMapper(anon.cb, src, tgt, Offsets(1.05, 0.9)), a.device)
        voc = VocoderStage(None, a.device)
        rows.append((stream_seconds(voc, x) / dur, stream_seconds(conv, x) / dur))
    r = np.array(rows)
    print(f"device {a.device}, 1 thread, {len(rows)} utterances, 20 ms chunks")
    print(f"vocoder only   RTF median {np.median(r[:, 0]):.3f}  (min {r[:, 0].min():.3f}, max {r[:, 0].max():.3f})")
    print(f"converter      RTF median {np.median(r[:, 1]):.3f}  (min {r[:, 1].min():.3f}, max {r[:, 1].max():.3f})")
    print(f"converter / vocoder ratio (median of per-utterance ratios) {np.median(r[:, 1] / r[:, 0]):.2f}")
    print(f"algorithmic latency {VocoderStage().latency_s * 1000:.0f} ms (analysis look-ahead; chunking adds none)")


if __name__ == "__main__":
    main()
