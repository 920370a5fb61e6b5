"""The receiver's cepstral lifter (``csss_core/data/receiver_lifter.json``).

The receiver analyzes a pseudo-voice that this project's vocoder synthesized. One synthesis and
analysis pass blurs the envelope: the mel-cepstrum measured on the vocoder's output has the same
shape as the one it was synthesized from but smaller higher coefficients (envelope interpolation
between mel bands, then F0-width and mel-band smoothing again in the analysis). The blur is close to a
per-coefficient gain, so the receiver undoes it with a lifter: coefficient ``c`` of what it measures
is multiplied by ``1 / slope_c``, where ``slope_c`` is the least-squares slope of the re-analyzed
coefficient on the original one (it restores each coefficient's spread, c0 untouched, never below 1).

Fitted on copy synthesis (analyze -> synthesize -> analyze) of espeak-ng pool voices
(:func:`csss_core.corpus.pool_voices`, bundled sentences 20-21), none of which is in the evaluation
corpus::

    .venv/bin/python models/fit_receiver_lifter.py [--voices 40]
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
from csss_core.speaker import SPEECH_POWER
from csss_core.vocoder import N_CEP, analyze, process_offline

ROOT = Path(__file__).resolve().parents[1]
MAX_LIFT = 4.0


def fit(root: Path, n_voices: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(lifter [N_CEP], slopes [N_CEP], frames used) from copy synthesis of ``n_voices`` pool voices."""
    utts = build_corpus(root, pool_voices(n_voices), n_sentences=2, n_enroll=1, first_sentence=20)
    orig, again = [], []
    for u in utts:
        x, _ = read_audio(root / u.path)
        p = analyze(x)
        q = analyze(process_offline(x))
        n = min(len(p), len(q))
        speech = p.power[:n] > SPEECH_POWER
        orig.append(p.mcep[:n][speech].numpy())
        again.append(q.mcep[:n][speech].numpy())
    a = np.concatenate(orig)
    b = np.concatenate(again)
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    slopes = (a * b).sum(axis=0) / (a * a).sum(axis=0)
    lifter = np.clip(1.0 / np.maximum(slopes, 1e-3), 1.0, MAX_LIFT)
    lifter[0] = 1.0
    return lifter, slopes, len(a)


def main() -> None:
    """Fit and write the lifter file."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voices", type=int, default=40)
    a = ap.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        lifter, slopes, frames = fit(Path(tmp), a.voices)
    assert lifter.shape == (N_CEP,)
    out = {
        "lifter": [round(float(v), 4) for v in lifter],
        "slopes": [round(float(v), 4) for v in slopes],
        "frames": frames,
        "source": f"models/fit_receiver_lifter.py: copy synthesis of {a.voices} espeak-ng pool voices "
                  "x 2 sentences (20-21); lifter = 1 / slope of re-analyzed on original mel-cepstrum, "
                  f"c0 = 1, clipped to [1, {MAX_LIFT}]",
    }
    path = ROOT / "csss_core" / "data" / "receiver_lifter.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path} ({frames} frames): lifter {out['lifter']}")


if __name__ == "__main__":
    main()
