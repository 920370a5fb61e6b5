"""Train the pseudo-speaker WGAN-GP over CSSS speaker embeddings and ship it in models/.

Training voices: the espeak-ng pool (csss_core.corpus.pool_voices, sentences 20-23, none of the
evaluation corpus's voices or texts). Each voice's embedding is estimated from its 4 sentences.

    python models/train_pseudo_gan.py [--voices 120] [--steps 3000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from csss_core.audio import read_audio
from csss_core.corpus import build_corpus, pool_voices
from csss_core.pseudo_speaker import train_wgan_gp
from csss_core.speaker import SpeakerEstimator, load_codebook
from csss_core.vocoder import analyze

HERE = Path(__file__).resolve().parent


def pool_embeddings(root: Path, n_voices: int) -> np.ndarray:
    """Speaker embeddings [n_voices, dim] of the pool voices."""
    cb = load_codebook()
    utts = build_corpus(root, pool_voices(n_voices), n_sentences=4, n_enroll=1, first_sentence=20)
    est: dict[str, SpeakerEstimator] = {}
    for u in utts:
        x, _ = read_audio(root / u.path)
        est.setdefault(u.speaker, SpeakerEstimator(cb)).update(analyze(x))
    return np.stack([e.estimate().to_vector() for e in est.values()]).astype(np.float64)


def main() -> None:
    """Train and write pseudo_gan.pt, its card, and the training embeddings for the report plot."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--voices", type=int, default=120)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--embeddings", default="", help="reuse an .npy of pool embeddings")
    a = ap.parse_args()
    torch.set_num_threads(2)
    if a.embeddings:
        data = np.load(a.embeddings)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            data = pool_embeddings(Path(tmp), a.voices)
    t0 = time.time()
    model, curve = train_wgan_gp(data, steps=a.steps)
    digest = model.save(HERE / "pseudo_gan.pt")
    np.save(HERE / "pseudo_gan_train_embeddings.npy", data.astype(np.float32))
    rng = np.random.default_rng(1)
    samples = model.generate(rng, 1000)
    accepted = float(np.mean([model.in_human_range(v) for v in samples]))
    card = {
        "name": "csss-pseudo-speaker-wgan-gp",
        "file": "pseudo_gan.pt",
        "sha256": digest,
        "embedding_dim": int(data.shape[1]),
        "noise_dim": 32,
        "architecture": "MLP 32-128-128-dim (LeakyReLU 0.2), critic dim-128-128-1; WGAN-GP, gp 10, 5 critic steps",
        "steps": a.steps,
        "training_voices": int(data.shape[0]),
        "training_data": "espeak-ng pool voices (csss_core.corpus.pool_voices), sentences 20-23",
        "train_seconds_cpu": round(time.time() - t0, 1),
        "human_range_acceptance": accepted,
        "critic_loss_curve_every_50_steps": [round(v, 3) for v in curve],
    }
    (HERE / "pseudo_gan.json").write_text(json.dumps(card, indent=1) + "\n")
    print(json.dumps({k: v for k, v in card.items() if k != "critic_loss_curve_every_50_steps"}, indent=1))


if __name__ == "__main__":
    main()
