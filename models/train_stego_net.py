"""Train the steganography networks (csss_core.stego_net) with the real Opus codec in the loop.

Carriers: espeak-ng pool voices (csss_core.corpus.pool_voices) reading the bundled sentences 20-23, so
no evaluation voice or text is used. Each step embeds random bits into contiguous segments of blocks,
sends them through a random channel and decodes the middle blocks:

    channel = one of: Opus 96 kbps, Opus 32 kbps (libopus via PyAV, 48 kHz, straight-through gradient
              y + (opus(y) - y).detach()), or a 16k -> 48k -> 16k resampling round trip;
              with some probability 5-10 % of the 20 ms packets dropped; gain; small noise;
              a time offset of up to half a phase step between embed and decode blocks.
    loss    = BCE(decoded logits, bits) + w * multi-resolution STFT log-magnitude distance(carrier, stego)

The residual level is fixed by construction (``snr_db`` under each block), so fidelity training only
shapes where the residual goes. CPU, one thread, time-budgeted:

    OMP_NUM_THREADS=1 python models/train_stego_net.py --minutes 32            # writes stego_net.pt
    OMP_NUM_THREADS=1 python models/train_stego_net.py --minutes 16 --no-graph # the ablation
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812

from csss_core.audio import read_audio, resample
from csss_core.channel import opus_roundtrip
from csss_core.corpus import build_corpus, pool_voices
from csss_core.stego_net import CARD, StegoNet, StegoNetConfig

HERE = Path(__file__).resolve().parent
SEG_BLOCKS = 4  # decoded blocks per segment (one more block on each side is embedded as context)


def pool_audio(root: Path, n_voices: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation speech (16 kHz) of the pool voices; the last 10 % of voices validate."""
    if not (root / "corpus.json").exists():
        build_corpus(root, pool_voices(n_voices), n_sentences=4, n_enroll=1, first_sentence=20, jobs=1)
    by_voice: dict[str, list[np.ndarray]] = {}
    for wav in sorted((root / "wav").glob("*/*.wav")):
        x, _ = read_audio(wav)
        by_voice.setdefault(wav.parent.name, []).append(x)
    names = sorted(by_voice)
    n_val = max(1, len(names) // 10)
    train = np.concatenate([x for v in names[:-n_val] for x in by_voice[v]])
    val = np.concatenate([x for v in names[-n_val:] for x in by_voice[v]])
    return train, val


def mrstft_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance of log magnitudes at three STFT resolutions (x, y: [B, N])."""
    total = x.new_zeros(())
    for n_fft in (256, 512, 1024):
        w = torch.hann_window(n_fft)
        sx = torch.stft(x, n_fft, n_fft // 4, window=w, return_complex=True).abs()
        sy = torch.stft(y, n_fft, n_fft // 4, window=w, return_complex=True).abs()
        total = total + (torch.log(sy + 1e-5) - torch.log(sx + 1e-5)).abs().mean()
    return total / 3


def channel(y: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, str]:
    """One random channel for a batch of segments [B, N] (same kind for the whole batch)."""
    kind = rng.choice(["opus96", "opus32", "resample"], p=[0.4, 0.35, 0.25])
    loss = float(rng.choice([0.0, 0.05, 0.1], p=[0.6, 0.25, 0.15])) if kind != "resample" else 0.0
    out = []
    for seg in y.detach().numpy():
        if kind == "resample":
            z = resample(resample(seg, 16_000, 48_000), 48_000, 16_000)
        else:
            z = opus_roundtrip(seg, bitrate=96_000 if kind == "opus96" else 32_000, loss=loss,
                               seed=int(rng.integers(1 << 30)))
        out.append(z[: len(seg)])
    z_t = torch.as_tensor(np.stack(out))
    y_ch = y + (z_t - y).detach()  # straight-through: the codec's gradient is taken as identity
    gain = torch.as_tensor(rng.uniform(0.5, 1.5, (len(y), 1)), dtype=torch.float32)
    rms = y.detach().pow(2).mean(dim=1, keepdim=True).sqrt()
    noise = torch.randn_like(y) * rms * torch.as_tensor(10 ** (-rng.uniform(40, 65, (len(y), 1)) / 20),
                                                         dtype=torch.float32)
    return (y_ch + noise) * gain, f"{kind}{'+loss' if loss else ''}"


def batch(audio: np.ndarray, n_seg: int, cfg: StegoNetConfig, rng: np.random.Generator) -> torch.Tensor:
    """Random carrier segments [n_seg, (SEG_BLOCKS + 2) * block] with random level."""
    n = (SEG_BLOCKS + 2) * cfg.block
    starts = rng.integers(0, len(audio) - n, n_seg)
    x = np.stack([audio[s : s + n] for s in starts]) * 10 ** (rng.uniform(-10, 4, (n_seg, 1)) / 20)
    return torch.as_tensor(x, dtype=torch.float32)


def run_step(net: StegoNet, x: torch.Tensor, rng: np.random.Generator, max_offset: int,
             fid_weight: float, snr_db: float | None = None) -> tuple[torch.Tensor, dict[str, float], str]:
    """Embed, channel, decode with a random offset; returns the loss and its parts."""
    cfg = net.cfg
    n_seg, n = x.shape
    nb = n // cfg.block
    bits = torch.as_tensor(rng.integers(0, 2, (n_seg * nb, cfg.bits_per_block)))
    y = net.embed(x.reshape(-1, cfg.block), bits, snr_db).reshape(n_seg, n)
    z, kind = channel(y, rng)
    off = int(rng.integers(-max_offset, max_offset + 1))
    dec = z[:, cfg.block + off : cfg.block + off + SEG_BLOCKS * cfg.block].reshape(-1, cfg.block)
    target = bits.reshape(n_seg, nb, -1)[:, 1 : 1 + SEG_BLOCKS].reshape(-1, cfg.bits_per_block).float()
    logits = net.extract(dec)
    bce = F.binary_cross_entropy_with_logits(logits, target)
    fid = mrstft_loss(x, y)
    ber = float(((logits > 0).float() != target).float().mean())
    return bce + fid_weight * fid, {"bce": float(bce.detach()), "mrstft": float(fid.detach()), "ber": ber}, kind


def validate(net: StegoNet, audio: np.ndarray, seed: int = 7) -> dict[str, float]:
    """Raw bit error rate of the (eval-mode) network on held-out pool voices, per channel."""
    from csss_core.stego_net import embed_net

    cfg = net.cfg
    rng = np.random.default_rng(seed)
    n = min(len(audio), 40 * cfg.block)
    x = audio[:n]
    bits = rng.integers(0, 2, n // cfg.block * cfg.bits_per_block).astype(np.uint8)
    net.eval()
    y = embed_net(x, bits, net)
    out = {"snr_db": float(10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum((y - x).astype(np.float64) ** 2)))}
    for name, z in (("clean", y), ("opus96", opus_roundtrip(y, bitrate=96_000)),
                    ("opus32", opus_roundtrip(y, bitrate=32_000))):
        with torch.inference_mode():
            logits = net.extract(torch.as_tensor(z[: n // cfg.block * cfg.block].reshape(-1, cfg.block)))
        out[f"ber_{name}"] = float(np.mean((logits.numpy().ravel() > 0) != bits))
    net.train()
    return out


def main() -> None:
    """Train one variant and write its weights and card entry."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=32.0, help="wall-clock training budget")
    ap.add_argument("--no-graph", action="store_true", help="the ablation without the graph encoder")
    ap.add_argument("--voices", type=int, default=60)
    ap.add_argument("--pool-dir", default="/tmp/csss_stego_pool", help="where the pool speech is synthesized")
    ap.add_argument("--segments", type=int, default=4, help="segments per step")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--fid-weight", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warm-db", type=float, default=12.0, help="residual this much louder at the start")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    cfg = replace(StegoNetConfig(), graph=not a.no_graph)
    t_data = time.time()
    train, val = pool_audio(Path(a.pool_dir), a.voices)
    print(f"pool speech: {len(train) / 16000:.0f} s train, {len(val) / 16000:.0f} s validation "
          f"({time.time() - t_data:.0f} s to build)", flush=True)
    net = StegoNet(cfg)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    t0 = time.time()
    budget = a.minutes * 60
    step, hist, log = 0, [], []
    max_offset = 2  # half the extractor's default phase step (samples)
    while time.time() - t0 < budget:
        frac = (time.time() - t0) / budget
        for g in opt.param_groups:
            g["lr"] = a.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        x = batch(train, a.segments, cfg, rng)
        # curriculum: a louder residual first, reaching the shipped level at 40 % of the budget
        snr = cfg.snr_db - a.warm_db * max(0.0, 1.0 - frac / 0.4)
        off = int(round(max_offset * min(1.0, frac / 0.3)))  # aligned first, then jitter
        loss, parts, kind = run_step(net, x, rng, off, a.fid_weight, snr)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        hist.append((kind, parts))
        step += 1
        if step % 50 == 0:
            recent = hist[-50:]
            by: dict[str, list[float]] = {}
            for k, p in recent:
                by.setdefault(k.split("+")[0], []).append(p["ber"])
            line = {"step": step, "min": round((time.time() - t0) / 60, 1), "snr": round(snr, 1),
                    "bce": round(float(np.mean([p["bce"] for _, p in recent])), 4),
                    "mrstft": round(float(np.mean([p["mrstft"] for _, p in recent])), 4),
                    **{f"ber_{k}": round(float(np.mean(v)), 4) for k, v in sorted(by.items())}}
            log.append(line)
            print(json.dumps(line), flush=True)
    train_s = time.time() - t0
    figures = validate(net, val)
    print("validation:", json.dumps(figures), flush=True)
    net.eval()
    name = "stego_net_nograph.pt" if a.no_graph else "stego_net.pt"
    digest = net.save(HERE / name)
    entry = {
        "file": name,
        "sha256": digest,
        "bytes": (HERE / name).stat().st_size,
        "config": asdict(cfg),
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "steps": step,
        "train_minutes_cpu_1_thread": round(train_s / 60, 1),
        "segments_per_step": a.segments,
        "blocks_per_segment": SEG_BLOCKS + 2,
        "lr": a.lr,
        "fid_weight": a.fid_weight,
        "curriculum": f"residual {a.warm_db} dB louder at step 0, linearly down to snr_db at 40 % of the budget",
        "seed": a.seed,
        "final_losses": log[-1] if log else {},
        "validation_heldout_pool_voices": figures,
    }
    card_path = HERE / CARD
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    card.setdefault("name", "csss-stego-unet-gcn")
    card["training_data"] = (f"{a.voices} espeak-ng pool voices (csss_core.corpus.pool_voices), bundled sentences "
                             "20-23 (none of the evaluation corpus's voices or texts); 10 % of voices held out")
    card["channel"] = ("Opus 96/32 kbps via libopus (PyAV, aiortc settings) with straight-through gradient, or "
                       "16k-48k-16k resampling; 0/5/10 % dropped 20 ms packets; gain 0.5-1.5; noise 40-65 dB down; "
                       f"time offset up to +/-{max_offset} samples")
    card["loss"] = f"BCE(bits) + {a.fid_weight} * multi-resolution STFT log-magnitude L1 (256/512/1024)"
    if a.no_graph:
        card["ablation"] = entry
    else:
        card.update(entry)
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    print(json.dumps(entry, indent=1))


if __name__ == "__main__":
    main()
