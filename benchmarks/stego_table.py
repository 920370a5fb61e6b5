"""The paper's Table II for the hidden channel, side by side with the spread-spectrum baseline.

For each carrier (evaluation-corpus speech of one voice, concatenated to ``--seconds``), the real
payload is the sealed frame of that voice's CSSS speaker embedding on the shipped quantization grid plus
the conversion data (exactly what ``sealed_voice`` hides), sealed with a fresh 32-byte key. Each system
embeds the repeated frame; the received audio (a short lead of near-silence in front, so that the
receiver does not know the block phase) is streamed through the system's extractor until the payload opens.

    OMP_NUM_THREADS=1 python benchmarks/stego_table.py --corpus /tmp/corpus_stego [--dnsmos]

Columns: SNR of the stego audio (dB); raw bit error rate at the true alignment; seconds of audio until
the payload opened ("-" = not within the carrier); cosine between the sent and the recovered embedding
(from the opened payload); embed / extract real-time factor on one thread (CPU seconds per second), and
the extractor's on the carrier without a payload (its worst case: it never locks).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from csss_core.audio import read_audio
from csss_core.channel import opus_roundtrip
from csss_core.corpus import Corpus, build_corpus
from csss_core.evaluation.metrics import snr_db
from csss_core.payload import ReceiverState, SpeakerPayload, frame_bits, new_key, seal
from csss_core.sealed_voice import EXTRA, HIDDEN_CHANNEL, QUIET_BEACON_CHANNEL
from csss_core.speaker import SpeakerEstimator, load_codebook
from csss_core.stego_net import StegoNet, embed_net, extract_net, load_stego_net
from csss_core.stego_ss import SSConfig, SSExtractor, extract_ss
from csss_core.stego_ss import embed as ss_embed
from csss_core.vocoder import analyze

CONDITIONS = [("no codec", None, 0.0), ("Opus 96k", 96_000, 0.0), ("Opus 32k", 32_000, 0.0),
              ("Opus 96k, 5% loss", 96_000, 0.05), ("Opus 32k, 5% loss", 32_000, 0.05)]
LEAD = 333  # samples of near-silence before the received audio (unknown block phase)


def carriers(corpus: Corpus, n: int, seconds: float) -> list[tuple[str, np.ndarray]]:
    """``n`` voices' trial sentences, each concatenated and cut to ``seconds``."""
    out = []
    for spk in corpus.speakers[:n]:
        parts = [read_audio(corpus.path(u))[0] for u in corpus.utterances if u.speaker == spk]
        x = np.concatenate(parts)
        out.append((spk, x[: int(seconds * 16000)]))
    return out


def embedding_of(x: np.ndarray) -> np.ndarray:
    """The CSSS speaker embedding of ``x`` (what csss anonymize hides)."""
    est = SpeakerEstimator(load_codebook())
    est.update(analyze(x))
    return est.estimate().to_vector().astype(np.float32)


class System:
    """One hidden channel: how to embed, extract, and read raw soft bits at the true alignment."""

    def __init__(self, name: str, embed: Callable[[np.ndarray, np.ndarray], np.ndarray],
                 extract: Callable[[np.ndarray, bytes], tuple[ReceiverState, float | None]],
                 raw: Callable[[np.ndarray], np.ndarray], rate: float) -> None:
        self.name, self.embed, self.extract, self.raw, self.rate = name, embed, extract, raw, rate


def net_system(name: str, net: StegoNet) -> System:
    """The U-Net (+ graph) channel."""
    n = net.cfg.block

    def extract(z: np.ndarray, key: bytes) -> tuple[ReceiverState, float | None]:
        ex = extract_net(z, key, net)
        return ex.receiver.state, ex.seconds_to_lock

    def raw(z: np.ndarray) -> np.ndarray:
        m = len(z) // n
        with torch.inference_mode():
            return net.extract(torch.as_tensor(z[: m * n].reshape(m, n))).numpy().ravel()

    return System(name, lambda x, b: embed_net(x, b, net), extract, raw, net.cfg.bit_rate)


def ss_system(cfg: SSConfig) -> System:
    """The spread-spectrum baseline at sealed_voice's settings."""

    def extract(z: np.ndarray, key: bytes) -> tuple[ReceiverState, float | None]:
        ex = extract_ss(z, key, cfg)
        return ex.receiver.state, ex.seconds_to_lock

    def raw(z: np.ndarray) -> np.ndarray:
        m = len(z) // cfg.bit_len
        return z[: m * cfg.bit_len].reshape(m, -1).astype(np.float64) @ SSExtractor(None, cfg)._p

    level = f"{cfg.strength_db:.0f} dB"
    if cfg.acquire_strength_db is not None and cfg.acquire_strength_db != cfg.strength_db:
        beacons = " and beacons" if cfg.beacon_every else ""
        level = f"{cfg.acquire_strength_db:.0f} dB preamble{beacons}, {level} between"
    band = f"{cfg.band[0] / 1000:g}-{cfg.band[1] / 1000:g} kHz"
    return System(f"spread spectrum {band} ({cfg.bit_len}-sample bits, {level})",
                  lambda x, b: ss_embed(x, b, cfg), extract, raw, 16000 / cfg.bit_len)


def cpu_rtf(fn: Callable[[], object], seconds: float) -> float:
    """Process CPU seconds per audio second of one call of ``fn``."""
    t = time.process_time()
    fn()
    return (time.process_time() - t) / seconds


def main() -> None:
    """Run every system on every carrier and condition; print the table (and JSON with --json)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="/tmp/corpus_stego", help="evaluation corpus (built here if missing)")
    ap.add_argument("--voices", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--dnsmos", action="store_true", help="also DNSMOS OVRL of carrier and stego audio")
    ap.add_argument("--json", default="", help="write the figures here")
    ap.add_argument("--no-nets", action="store_true", help="only the spread-spectrum channels")
    a = ap.parse_args()
    torch.set_num_threads(1)
    root = Path(a.corpus)
    if not (root / "corpus.json").exists():
        print(f"building the evaluation corpus in {root} ...", flush=True)
        build_corpus(root, jobs=1)
    corpus = Corpus.load(root)
    systems = [] if a.no_nets else [net_system("U-Net + graph encoder", load_stego_net()),
                                    net_system("U-Net, no graph encoder", load_stego_net(ablation=True))]
    systems.append(ss_system(HIDDEN_CHANNEL))
    if QUIET_BEACON_CHANNEL != HIDDEN_CHANNEL:
        systems.append(ss_system(QUIET_BEACON_CHANNEL))  # the one shipped before, side by side
    rows: dict[tuple[str, str], dict[str, list[float]]] = {}
    quality: dict[str, dict[str, list[float]]] = {}
    for spk, x in carriers(corpus, a.voices, a.seconds):
        emb = embedding_of(x)
        key = new_key()
        bits = frame_bits(seal(SpeakerPayload(emb, EXTRA.pack(7, 0, 100, 0), compact=True), key))
        print(f"{spk}: {len(x) / 16000:.1f} s, frame {len(bits)} bits", flush=True)
        for sysm in systems:
            q = quality.setdefault(sysm.name, {})
            t = time.process_time()
            y = sysm.embed(x, bits)
            q.setdefault("rtf_embed", []).append((time.process_time() - t) / (len(x) / 16000))
            q.setdefault("snr_db", []).append(snr_db(x, y))
            # the receiver's worst case: audio without a payload (it never locks, every phase keeps looking)
            t = time.process_time()
            sysm.extract(x, key)
            q.setdefault("rtf_idle", []).append((time.process_time() - t) / (len(x) / 16000))
            if a.dnsmos:
                from csss_core.evaluation.quality import dnsmos

                q.setdefault("dnsmos_drop", []).append(dnsmos(x)["ovrl"] - dnsmos(y)["ovrl"])
            for cond, rate, loss in CONDITIONS:
                z = y if rate is None else opus_roundtrip(y, bitrate=rate, loss=loss, seed=11)
                soft = sysm.raw(z)
                ref = bits[np.arange(len(soft)) % len(bits)]
                zl = np.concatenate([np.random.default_rng(5).normal(0, 1e-4, LEAD).astype(np.float32), z])
                t = time.process_time()
                state, secs = sysm.extract(zl, key)
                cpu = time.process_time() - t
                read = (secs if secs is not None else len(zl) / 16000)
                r = rows.setdefault((sysm.name, cond), {})
                r.setdefault("ber", []).append(float(np.mean((soft > 0) != ref)))
                r.setdefault("lock_s", []).append(np.inf if secs is None else secs)
                r.setdefault("rtf_extract", []).append(cpu / read)
                if state.opened is not None and state.authenticated:
                    got = state.opened.payload.embedding
                    r.setdefault("cosine", []).append(float(got @ emb / np.linalg.norm(got) / np.linalg.norm(emb)))
                print(f"  {sysm.name:40s} {cond:18s} ber {r['ber'][-1]:.4f} lock "
                      f"{'-' if secs is None else f'{secs:.2f} s'}", flush=True)
    print()
    print(f"carriers: {a.voices} evaluation-corpus voices x {a.seconds:.0f} s; payload: sealed 186-d embedding + "
          f"6 bytes = {len(bits)}-bit frame; lead of {LEAD} samples; one thread")
    print()
    dn_head = "DNSMOS OVRL drop | " if a.dnsmos else ""
    print(f"| system | bit/s | SNR dB | {dn_head}embed RTF | extract RTF, no payload |")
    print("|---|---|---|" + ("---|" if a.dnsmos else "") + "---|---|")
    for sysm in systems:
        q = quality[sysm.name]
        dn = f"{np.mean(q['dnsmos_drop']):.3f} | " if a.dnsmos else ""
        print(f"| {sysm.name} | {sysm.rate:.0f} | {np.mean(q['snr_db']):.1f} | {dn}{np.mean(q['rtf_embed']):.3f} | "
              f"{np.mean(q['rtf_idle']):.3f} |")
    print()
    print("| system | channel | raw BER | opened | lock s (median, max) | cosine (min) | extract RTF |")
    print("|---|---|---|---|---|---|---|")
    out = {"quality": quality, "rows": {}}
    for sysm in systems:
        for cond, _, _ in CONDITIONS:
            r = rows[(sysm.name, cond)]
            lock = np.array(r["lock_s"])
            ok = int(np.sum(np.isfinite(lock)))
            med = f"{np.median(lock):.2f}" if ok > len(lock) / 2 else "-"
            mx = f"{lock.max():.2f}" if ok == len(lock) else "-"
            cos = f"{min(r['cosine']):.5f}" if r.get("cosine") else "-"
            print(f"| {sysm.name} | {cond} | {np.mean(r['ber']):.4f} | {ok}/{len(lock)} | {med}, {mx} | {cos} | "
                  f"{np.mean(r['rtf_extract']):.3f} |")
            out["rows"][f"{sysm.name} / {cond}"] = {k: [float(v) for v in vals] for k, vals in r.items()}
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
