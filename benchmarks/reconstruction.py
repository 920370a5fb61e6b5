"""The receiver's reconstruction, matched analysis vs plain analysis, side by side in one run.

For each corpus voice, a few of its trial utterances are joined (at least ``--seconds`` of speech),
sent through exactly what a call does (``csss_core.roundtrip``: sender engine, real Opus at 96 kbit/s,
receiver engine) twice with the same seed and key: once with the receiver's analysis matched to the
sender's vocoder (de-blurring lifter + receiver voicing, the default) and once analyzing the
pseudo-voice like natural speech (the receiver before this change). Prints, after the lock, the GE2E
cosine of the reconstruction to the original, PESQ-WB, and the same cosine for the pseudo-voice, per
voice and as medians; and the matched receiver's cosine after the hidden channel's acquisition
preamble (the first copies, whose embedding cannot be fully undone), i.e. a call's steady state.

    .venv/bin/python benchmarks/reconstruction.py --corpus corpus [--voices 8] [--seconds 20]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from csss_core.anonymizer import Anonymizer
from csss_core.audio import INTERNAL_SAMPLE_RATE, read_audio
from csss_core.corpus import Corpus
from csss_core.evaluation.attackers import GE2EAttacker
from csss_core.payload import embedding_grid, new_key
from csss_core.roundtrip import figures, roundtrip
from csss_core.sealed_voice import HIDDEN_CHANNEL, identity_bits


def main() -> None:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="corpus")
    ap.add_argument("--voices", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    corpus = Corpus.load(a.corpus)
    trials = corpus.split("trial")
    speakers = sorted({u.speaker for u in trials})
    speakers = speakers[:: max(1, len(speakers) // a.voices)][: a.voices]
    anon = Anonymizer()
    key = new_key()
    ge2e = GE2EAttacker()
    frame = len(identity_bits(np.zeros(embedding_grid().dim), 0, 0, 1.0, key)) * HIDDEN_CHANNEL.bit_len
    pre_end = HIDDEN_CHANNEL.acquire_copies * frame + INTERNAL_SAMPLE_RATE // 2
    cols = ("pseudo", "plain", "matched")
    rows: dict[str, list[float]] = {f"{c} {m}": [] for c in (*cols, "steady") for m in ("ge2e", "pesq")}
    print(f"{'voice':14s} {'lock s':>6s} | GE2E cos to original: pseudo  plain matched | PESQ-WB: plain matched"
          f" | matched after the preamble ({pre_end / INTERNAL_SAMPLE_RATE:.1f} s)")
    for i, spk in enumerate(speakers):
        parts = []
        for u in (u for u in trials if u.speaker == spk):
            parts.append(read_audio(corpus.path(u))[0])
            if sum(map(len, parts)) >= a.seconds * INTERNAL_SAMPLE_RATE:
                break
        x = np.concatenate(parts).astype(np.float32)
        got = {}
        for matched in (False, True):
            rt = roundtrip(x, key, seed=100 + i, anonymizer=anon, matched=matched)
            got[matched] = figures(x, rt, quality=False)
        steady = float(ge2e.embed(x[pre_end:]) @ ge2e.embed(rt.reconstructed[pre_end:]))
        f0, f1 = got[False], got[True]
        if "ge2e_cos_original_vs_reconstructed_after_lock" not in f1:
            print(f"{spk:14s} no reconstruction: {f1.get('reason')}")
            continue
        vals = {"pseudo ge2e": f1["ge2e_cos_original_vs_anonymized_after_lock"],
                "plain ge2e": f0["ge2e_cos_original_vs_reconstructed_after_lock"],
                "matched ge2e": f1["ge2e_cos_original_vs_reconstructed_after_lock"],
                "plain pesq": f0["pesq_wb_reconstructed"], "matched pesq": f1["pesq_wb_reconstructed"],
                "steady ge2e": steady}
        for k, v in vals.items():
            rows[k].append(float(v))  # type: ignore[arg-type]
        print(f"{spk:14s} {f1['seconds_to_lock']:6.1f} | {vals['pseudo ge2e']:28.3f} {vals['plain ge2e']:6.3f} "
              f"{vals['matched ge2e']:7.3f} | {vals['plain pesq']:13.2f} {vals['matched pesq']:7.2f} | "
              f"{vals['steady ge2e']:.3f}", flush=True)
    med = {k: float(np.median(v)) for k, v in rows.items() if v}
    if med:
        print(f"{'median':14s} {'':6s} | {med['pseudo ge2e']:28.3f} {med['plain ge2e']:6.3f} "
              f"{med['matched ge2e']:7.3f} | {med['plain pesq']:13.2f} {med['matched pesq']:7.2f} | "
              f"{med['steady ge2e']:.3f}")
        print(f"voices {len(rows['matched ge2e'])}; matched > plain on GE2E for "
              f"{sum(m > p for m, p in zip(rows['matched ge2e'], rows['plain ge2e'], strict=True))}")


if __name__ == "__main__":
    main()
