"""Train the universal acoustic-class codebook of the converter (k-means, shipped in models/).

Data: a pool of espeak-ng voices (accent x variant x base pitch) reading the bundled sentences that
the evaluation corpus does not use, so no evaluation speaker or text is in the training data.

    python models/train_codebook.py [--classes 8] [--voices 120]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from csss_core.audio import read_audio
from csss_core.corpus import build_corpus, pool_voices
from csss_core.speaker import SPEECH_POWER, Codebook
from csss_core.vocoder import analyze

HERE = Path(__file__).resolve().parent


def kmeans(x: np.ndarray, k: int, iters: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Plain k-means++ / Lloyd; returns centroids [k, d] and labels [n]."""
    rng = np.random.default_rng(seed)
    c = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None, :] - np.array(c)[None]) ** 2).sum(-1), axis=1)
        c.append(x[rng.choice(len(x), p=d2 / d2.sum())])
    cent = np.array(c)
    for _ in range(iters):
        lab = np.argmin(((x[:, None, :] - cent[None]) ** 2).sum(-1), axis=1)
        new = np.array([x[lab == j].mean(0) if np.any(lab == j) else cent[j] for j in range(k)])
        if np.allclose(new, cent):
            break
        cent = new
    return cent, lab


def pool_features(root: Path, n_voices: int) -> list[np.ndarray]:
    """Speaker-normalized envelopes of every pool voice (one array per voice)."""
    voices = pool_voices(n_voices)
    utts = build_corpus(root, voices, n_sentences=4, n_enroll=1, first_sentence=20)
    per: dict[str, list[np.ndarray]] = {}
    for u in utts:
        x, _ = read_audio(root / u.path)
        fr = analyze(x)
        speech = fr.power > SPEECH_POWER
        per.setdefault(u.speaker, []).append(fr.mcep[speech][:, 1:].numpy())
    out = []
    for envs in per.values():
        e = np.concatenate(envs)
        out.append(e - e.mean(axis=0))
    return out


def main() -> None:
    """Train and write codebook.npz and its card."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, default=8)
    ap.add_argument("--voices", type=int, default=120)
    ap.add_argument("--out", default=str(HERE))
    a = ap.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        feats = pool_features(Path(tmp), a.voices)
    x = np.concatenate(feats)
    cent, lab = kmeans(x, a.classes)
    priors = np.bincount(lab, minlength=a.classes) / len(lab)
    # temperature: mean squared distance to the nearest centroid, so posteriors are soft but decisive
    temp = float(np.mean(np.min(((x[:, None, :] - cent[None]) ** 2).sum(-1), axis=1)))
    cb = Codebook(cent, priors, temp)
    out = Path(a.out)
    digest = cb.save(out / "codebook.npz")
    card = {
        "name": "csss-converter-codebook",
        "file": "codebook.npz",
        "sha256": digest,
        "classes": a.classes,
        "envelope_dims": int(cent.shape[1]),
        "temperature": temp,
        "training_data": f"{a.voices} espeak-ng pool voices (csss_core.corpus.pool_voices), 4 sentences each "
                         "(bundled sentences 20-23, not used by the evaluation corpus)",
        "frames": int(len(x)),
        "method": "k-means++ on per-speaker mean-normalized mel-cepstra (c1..c23) of the CSSS vocoder",
    }
    (out / "codebook.json").write_text(json.dumps(card, indent=1) + "\n")
    print(json.dumps(card, indent=1))


if __name__ == "__main__":
    main()
