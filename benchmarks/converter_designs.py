"""Re-run the converter design comparison (the design table in the README and the issue note).

Designs, all on the CSSS vocoder, targets drawn per seed from real espeak-ng pool voices (not in the
evaluation corpus): A global statistics (K=1), B class-conditional K=8 (the shipped codebook),
B' K=24, C/C' beta 0.75, D beta 0.5, E fixed harmonicity, F per-dimension beta; plus vocoder
copy-synthesis. The shipped default is the built-in ``csss`` system.

    .venv/bin/python benchmarks/converter_designs.py --corpus corpus [--max-speakers 8 --max-trials 5]

Prepares (once) a cache with the pool voices' features, a K=24 codebook and the pool embeddings,
then runs ``csss eval`` with these functions as ``py:benchmarks.converter_designs:NAME`` systems.
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import cache
from pathlib import Path

import numpy as np

from csss_core.audio import read_audio
from csss_core.converter import FrameMapper, Offsets, convert
from csss_core.corpus import Corpus, build_corpus, pool_voices
from csss_core.speaker import SPEECH_POWER, Codebook, SpeakerEmbedding, SpeakerEstimator, load_codebook
from csss_core.vocoder import analyze, process_offline

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("CSSS_DESIGNS_CACHE", ROOT / "eval_out" / "designs_cache"))
DESIGNS = ["vocoder_only", "global_stats", "class_b1", "class24_b1", "class_b075", "class24_b075", "class_b05",
           "k8_harm", "k24_bvec_harm"]


def prepare(n_voices: int = 120) -> None:
    """Build the pool, a K=24 codebook and the pool embeddings for K=8 and K=24 into CACHE."""
    sys.path.insert(0, str(ROOT / "models"))
    from train_codebook import kmeans

    CACHE.mkdir(parents=True, exist_ok=True)
    if (CACHE / "pool_emb24.npy").is_file():
        return
    pool = CACHE / "pool"
    if not (pool / "corpus.json").is_file():
        build_corpus(pool, pool_voices(n_voices), n_sentences=4, n_enroll=1, first_sentence=20)
    c = Corpus.load(pool)
    frames: dict[str, list] = {}
    env: dict[str, list[np.ndarray]] = {}
    for u in c.utterances:
        fr = analyze(read_audio(c.path(u))[0])
        frames.setdefault(u.speaker, []).append(fr)
        env.setdefault(u.speaker, []).append(fr.mcep[fr.power > SPEECH_POWER][:, 1:].numpy())
    x = np.concatenate([np.concatenate(v) - np.concatenate(v).mean(0) for v in env.values()])
    cent, lab = kmeans(x, 24)
    temp = float(np.mean(np.min(((x[:, None, :] - cent[None]) ** 2).sum(-1), axis=1)))
    cb24 = Codebook(cent, np.bincount(lab, minlength=24) / len(lab), temp)
    cb24.save(CACHE / "codebook24.npz")
    for name, cb in (("pool_emb8.npy", load_codebook()), ("pool_emb24.npy", cb24)):
        embs = []
        for frs in frames.values():
            est = SpeakerEstimator(cb)
            for f in frs:
                est.update(f)
            embs.append(est.estimate().to_vector())
        np.save(CACHE / name, np.stack(embs))


@cache
def _models() -> dict[str, object]:
    cb8 = load_codebook()
    cb24 = load_codebook(CACHE / "codebook24.npz")
    cb1 = Codebook(np.zeros((1, cb8.centroids.shape[1])), np.ones(1), cb8.temperature)
    return {"cb8": cb8, "cb24": cb24, "cb1": cb1, "pool8": np.load(CACHE / "pool_emb8.npy"),
            "pool24": np.load(CACHE / "pool_emb24.npy")}


def _run(x: np.ndarray, seed: int, k: int, beta: float | np.ndarray = 1.0, harm: float | None = None) -> np.ndarray:
    m = _models()
    rng = np.random.default_rng(seed)
    if k == 1:
        cb, pool = m["cb1"], m["pool8"]
    else:
        cb, pool = m[f"cb{k}"], m[f"pool{k}"]
    assert isinstance(cb, Codebook) and isinstance(pool, np.ndarray)
    est = SpeakerEstimator(cb)
    est.update(analyze(x))
    src = est.estimate()
    tv = pool[rng.integers(len(pool))]
    if k == 1:
        full = SpeakerEmbedding.from_vector(tv, m["cb8"].k)  # type: ignore[attr-defined]
        tgt = SpeakerEmbedding(full.logf0_mean, full.logf0_std, full.global_mean(m["cb8"].priors)[None, :])  # type: ignore[attr-defined]
    else:
        tgt = SpeakerEmbedding.from_vector(tv, cb.k)
    return convert(x, FrameMapper(cb, src, tgt, Offsets.draw(rng), beta, harm))


def vocoder_only(x: np.ndarray, sr: int, seed: int) -> np.ndarray:
    """Copy synthesis."""
    return process_offline(x)


def global_stats(x: np.ndarray, sr: int, seed: int) -> np.ndarray:
    """A: global envelope mean + log-F0 statistics."""
    return _run(x, seed, 1)


def class_b1(x: np.ndarray, sr: int, seed: int) -> np.ndarray:
    """B: K=8 class means, beta 1."""
    return _run(x, seed, 8)


def class24_b1(x: np.ndarray, sr: int, seed: int) -> np.ndarray:
    """B': K=24, beta 1."""
    return _run(x, seed, 24)


def class_b075(x: np.ndarray, sr: int, seed: int) -> np.ndarray:
    """C: K=8, beta 0.75."""
    return _run(x, seed, 8, 0.75)


def class24_b075(x: np.ndarray, sr: int, seed: int) -> np.ndarray:
    """C': K=24, beta 0.75."""
    return _run(x, seed, 24, 0.75)


def class_b05(x: np.ndarray, sr: int, seed: int) -> np.ndarray:
    """D: K=8, beta 0.5."""
    return _run(x, seed, 8, 0.5)


def k8_harm(x: np.ndarray, sr: int, seed: int) -> np.ndarray:
    """E: K=8, beta 1, fixed harmonicity 0.85."""
    return _run(x, seed, 8, 1.0, 0.85)


def k24_bvec_harm(x: np.ndarray, sr: int, seed: int) -> np.ndarray:
    """F: K=24, beta 1 on c1-c8 and 0.3 above, fixed harmonicity."""
    return _run(x, seed, 24, np.concatenate([np.ones(8), np.full(15, 0.3)]), 0.85)


def main() -> None:
    """Prepare the cache and run the comparison through ``csss eval``."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="corpus")
    ap.add_argument("--max-speakers", default="8")
    ap.add_argument("--max-trials", default="5")
    ap.add_argument("--out", default="eval_out/designs")
    ap.add_argument("--designs", default=",".join(DESIGNS))
    a = ap.parse_args()
    prepare()
    sys.path.insert(0, str(ROOT))  # so that py:benchmarks.converter_designs:NAME imports
    from client.cli import main as csss

    systems = ",".join(f"py:benchmarks.converter_designs:{d}" for d in a.designs.split(",")) + ",csss"
    raise SystemExit(csss(["eval", "--corpus", a.corpus, "--max-speakers", a.max_speakers, "--max-trials",
                           a.max_trials, "--systems", systems, "--no-quality", "--out", a.out]))


if __name__ == "__main__":
    main()
