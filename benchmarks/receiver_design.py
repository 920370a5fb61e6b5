"""The vocoder's and the receiver's design choices, re-measured: each part prints the figures its choice
rests on.

``--part sender_voicing``: how the analysis of natural speech decides voicing and harmonicity
(:data:`SENDER_VOICING`), swept on copy synthesis of a real voice (alsa-utils' recordings, when
installed) and 6 corpus voices: PESQ-WB, GE2E cosine and DNSMOS OVRL of the copy.

``--part vocoder``: how much one and two passes through this project's vocoder keep of a voice (GE2E
cosine of copy synthesis to the original, PESQ-WB), and a second pass with the receiver's lifter.
``--part voicing``: the receiver's voicing setting, swept on espeak-ng pool voices (not the evaluation
corpus), reconstruction GE2E cosine (offline, no hidden channel).
``--part schedule``: the hidden channel's schedule (carrier level and ISS lam in the preamble, between
beacons and in the beacons), side by side through Opus 96 kbit/s on 8 corpus voices x 45 s (their
sentences repeated): the reconstruction's GE2E cosine to the original after 7 s, the lock time from the
start, and the lock time of receivers joining at 6 points after the preamble.
``--part loss``: the call engines under packet loss, two schedules side by side (the shipped one marked): a
sender engine that learns the identity live (its payload starts after ~3 s of speech) on 8 corpus voices x
30 s, Opus 96 kbit/s, then 6 seeded patterns each of 5, 10 and 20 % lost 20 ms packets filled in as the
call does (``client.media.GapFiller``) before the receiver engine: how many lock, and when (seconds from
the call's start; median, 90th percentile, max).

``--part soft``: how the extractor scales its soft bits (``SSExtractor.LEVEL_FLOOR``: correlation over the
block's RMS, not below a floor; "raw" = the plain correlation): raw bit errors after summing 1, 2 and 4
copies at the true alignment (4 corpus voices x 30 s, Opus 96k and 32k, the lam 0.6 and the quiet
carrier without preamble), and how often a receiver opens the lam-1 preamble from its first copy alone
(12 trials, Opus 96k).

``--part analysis``: where the reconstruction loses the voice and the words, offline without a hidden channel
(8 corpus voices x 5 sentences): the receiver rebuilds the sender's frames (F0, harmonicity, power,
envelope) by analyzing the pseudo-voice, maps them back and synthesizes. Each row gives it some of the
sender's true frames instead: how much of the gap to copy synthesis each parameter's estimation error
costs (GE2E cosine and PESQ-WB to the original, medians; WER pooled, Whisper tiny.en). "envelope only at
the pseudo-voice's harmonics" gives it the true envelope sampled where the pseudo-voice has harmonics
(exactly what an ideal analysis of voiced frames could measure) and refits the rest: the limit of any
analysis of the pseudo-voice with this sender.

    .venv/bin/python benchmarks/receiver_design.py --corpus corpus --part PART    # one of the parts above
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

import csss_core.sealed_voice as sv
from csss_core.anonymizer import Anonymizer
from csss_core.audio import INTERNAL_SAMPLE_RATE, read_audio, resample
from csss_core.channel import opus_roundtrip
from csss_core.converter import FrameMapper, receiver_lifter
from csss_core.corpus import Corpus, build_corpus, pool_voices, real_voice
from csss_core.evaluation.attackers import GE2EAttacker
from csss_core.payload import embedding_grid, new_key
from csss_core.speaker import SpeakerEmbedding
from csss_core.stego_ss import SSConfig
from csss_core.vocoder import (
    POWER_DEBLUR,
    RECEIVER_VOICING,
    SENDER_VOICING,
    Frames,
    Voicing,
    analyze,
    deblurred_power,
    process_offline,
)

VOICES = ["fest_ked", "flite_awb", "flite_slt", "esp_us_f1", "esp_gb_m5", "fest_slt_hts", "flite_rms", "esp_us_m3"]


def voice(corpus: Corpus, spk: str, n: int) -> np.ndarray:
    """The first ``n`` trial utterances of ``spk`` joined."""
    us = [u for u in corpus.split("trial") if u.speaker == spk][:n]
    return np.concatenate([read_audio(corpus.path(u))[0] for u in us]).astype(np.float32)


def synth(p: Frames, n: int) -> np.ndarray:
    """Synthesize ``n`` samples from given frames (the vocoder's own synthesis)."""
    state = {"i": 0}

    def take(fr: Frames) -> Frames:
        i, m = state["i"], len(fr)
        state["i"] += m
        sel = p.select(slice(i, i + m))
        if len(sel) < m:
            z = p.select(slice(0, 1))
            sel = Frames.cat([sel] + [Frames(z.f0 * 0, z.harm * 0, z.power * 0 + 1e-12, z.mcep)] * (m - len(sel)))
        return sel

    return process_offline(np.zeros(n, np.float32), take)


def part_vocoder(corpus: Corpus, ge2e: GE2EAttacker) -> None:
    from csss_core.evaluation.metrics import pesq_wb

    lift = torch.from_numpy(receiver_lifter())
    rows: dict[str, list[float]] = {}
    pesq: dict[str, list[float]] = {}
    for spk in VOICES[:6]:
        x = voice(corpus, spk, 3)
        e = ge2e.embed(x)
        p = analyze(x)
        once = synth(p, len(x))
        q = analyze(once)
        lifted = q.mcep.clone()
        lifted[:, 1:] = q.mcep[:, 1:] * lift[1:]
        for name, y in (("copy once", once), ("copy twice", synth(q, len(x))),
                        ("twice, second analysis lifted", synth(Frames(q.f0, q.harm, q.power, lifted), len(x)))):
            rows.setdefault(name, []).append(float(e @ ge2e.embed(y)))
            pesq.setdefault(name, []).append(pesq_wb(x, y))
    for name, v in rows.items():
        print(f"{name:32s} GE2E cosine to the original: median {np.median(v):.3f}, PESQ-WB median "
              f"{np.median(pesq[name]):.2f} (6 voices)")


def part_sender_voicing(corpus: Corpus, ge2e: GE2EAttacker) -> None:
    from csss_core.evaluation.metrics import pesq_wb
    from csss_core.evaluation.quality import dnsmos

    settings = [Voicing(0.3, 0.35), Voicing(0.5, 0.55), Voicing(0.5, 0.6), Voicing(0.4, 0.6), Voicing(0.45, 0.55),
                Voicing(0.5, 0.65), Voicing(0.5, 0.7)]
    real = real_voice()
    if real is None:
        print("no real voice here (Debian alsa-utils not installed): corpus voices only")
    data = [("real voice (alsa-utils)", real)] if real is not None else []
    data += [(s, voice(corpus, s, 3)) for s in VOICES[:6]]
    print("original DNSMOS OVRL: " + ", ".join(f"{n} {dnsmos(x)['ovrl']:.2f}" for n, x in data))
    for v in settings:
        r = np.array([(pesq_wb(x, y), float(ge2e.embed(x) @ ge2e.embed(y)), dnsmos(y)["ovrl"])
                      for y, x in ((process_offline(x, voicing=v), x) for _, x in data)])
        mark = " (shipped)" if v == SENDER_VOICING else ""
        head = f"voiced below {v.threshold:.2f}, harmonic below {v.full - 0.25:.2f}{mark}:"
        syn = r[1:] if real is not None else r
        real_s = "" if real is None else f" real voice PESQ-WB {r[0, 0]:.2f} GE2E {r[0, 1]:.3f} OVRL {r[0, 2]:.2f} |"
        print(f"{head:52s}{real_s} {len(syn)} corpus voices median PESQ-WB {np.median(syn[:, 0]):.2f} "
              f"GE2E {np.median(syn[:, 1]):.3f} OVRL {np.median(syn[:, 2]):.2f}")


def part_voicing(ge2e: GE2EAttacker) -> None:
    anon = Anonymizer(asv_check=False)
    cb = anon.cb
    settings = [SENDER_VOICING, Voicing(0.6, 0.65), Voicing(0.6, 0.8), Voicing(0.7, 0.8), Voicing(0.7, 0.95)]
    with tempfile.TemporaryDirectory() as tmp:
        utts = build_corpus(Path(tmp), pool_voices(40)[::5], n_sentences=2, n_enroll=1, first_sentence=20)
        by: dict[str, list[np.ndarray]] = {}
        for u in utts:
            by.setdefault(u.speaker, []).append(read_audio(Path(tmp) / u.path)[0])
        rows: dict[Voicing, list[float]] = {}
        for i, parts in enumerate(by.values()):
            x = np.concatenate(parts).astype(np.float32)
            r = anon.anonymize(x, 1000 + i)
            real = SpeakerEmbedding.from_vector(r.source, cb.k)
            pseudo = SpeakerEmbedding.from_vector(r.pseudo, cb.k)
            inv = FrameMapper(cb, pseudo, real, r.offsets.inverse(), lifter=receiver_lifter(), undo=True)
            e = ge2e.embed(x)
            for v in settings:
                rows.setdefault(v, []).append(float(e @ ge2e.embed(sv.convert_back(r.audio, inv, voicing=v))))
    for v, c in rows.items():
        print(f"voiced below aperiodicity {v.threshold:.2f}, fully harmonic below {v.full - 0.25:.2f}: "
              f"reconstruction GE2E cosine mean {np.mean(c):.3f}, median {np.median(c):.3f} ({len(c)} pool voices)")


def _only(schedules: list[tuple[str, SSConfig]], only: str) -> list[tuple[str, SSConfig]]:
    """The schedules whose names contain one of the comma-separated ``only`` (all when empty)."""
    keep = [s for s in schedules if not only or any(w in s[0] for w in only.split(","))]
    if not keep:
        raise SystemExit(f"no schedule matches {only!r}: " + "; ".join(n for n, _ in schedules))
    return keep


def part_schedule(corpus: Corpus, ge2e: GE2EAttacker, only: str = "") -> None:
    anon = Anonymizer()
    key = new_key()
    shipped = sv.HIDDEN_CHANNEL
    schedules = [("band 6-7.7 kHz, lam 0 at -36 dB (BAND_CHANNEL)", sv.BAND_CHANNEL),
                 ("lam 0 at -24 dB, no beacons", replace(sv.ISS_CHANNEL, lam=0.0)),
                 ("lam 0.6 at -24 dB (ISS_CHANNEL)", sv.ISS_CHANNEL),
                 ("quiet, lam-1 beacon every third copy", replace(sv.QUIET_BEACON_CHANNEL, beacon_lam=1.0)),
                 ("quiet, lam-0.6 beacon every third copy", replace(sv.QUIET_BEACON_CHANNEL, beacon_lam=0.6)),
                 ("quiet, lam-0.6 beacon every 2nd copy", replace(sv.QUIET_BEACON_CHANNEL, beacon_every=2)),
                 ("quiet, lam-1 beacon every fourth copy",
                  replace(sv.QUIET_BEACON_CHANNEL, beacon_every=4, beacon_lam=1.0))]
    schedules = _only(schedules, only)
    seconds, st = 45, 7 * 16000

    rows: dict[str, tuple[list[float], list[float], list[float]]] = {n: ([], [], []) for n, _ in schedules}
    ceiling: list[float] = []  # the same identity data, no hidden channel in the audio at all
    for i, spk in enumerate(VOICES):
        x = voice(corpus, spk, 6)
        x = np.tile(x, -(-seconds * 16000 // len(x)))[: seconds * 16000]
        r = anon.anonymize(x, 100 + i)
        frame = sv.frame_seconds(r, key)
        joins = [int((2 * frame + d) * 16000) for d in (0.4, 1.3, 2.2, 3.5, 5.0, 7.5)]
        ea = ge2e.embed(x[st:])
        have_ceiling = False
        try:
            for name, cfg in schedules:
                sv.HIDDEN_CHANNEL = cfg
                yo = opus_roundtrip(sv.hide_identity(r, key), 16000, 96_000)
                ext = sv.extract_identity(yo, key)
                ok = ext.embedding is not None
                rows[name][0].append(float(ea @ ge2e.embed(sv.reconstruct(yo, ext, anon)[st:])) if ok else np.nan)
                if ok and not have_ceiling:  # once per voice: the identity data is the same in every schedule
                    have_ceiling = True
                    plain = opus_roundtrip(r.audio, 16000, 96_000)
                    rec = sv.convert_back(plain, sv.reconstruction_mapper(ext, anon))
                    ceiling.append(float(ea @ ge2e.embed(rec[st:])))
                rows[name][1].append(np.inf if ext.seconds_to_lock is None else ext.seconds_to_lock)
                late = (sv.extract_identity(yo[j:], key).seconds_to_lock for j in joins)
                rows[name][2].extend(np.inf if t is None else t for t in late)
        finally:
            sv.HIDDEN_CHANNEL = shipped
    print(f"{len(VOICES)} voices x {seconds} s through Opus 96k; joins: 6 points after the preamble per voice")
    print(f"{'no hidden channel (ceiling)':40s} reconstruction GE2E median {np.median(ceiling):.3f}")
    for name, cfg in schedules:
        c, l0, late = (np.array(v) for v in rows[name])
        name += " (shipped)" if cfg == shipped else ""
        print(f"{name:40s} reconstruction GE2E median {np.nanmedian(c):.3f} | lock from the start max "
              f"{np.max(l0):.1f} s | joining late: median {np.median(late):.1f} s, max {np.max(late):.1f} s, "
              f"never {int(np.sum(np.isinf(late)))}")
        print(f"    {cfg}")


def part_loss(corpus: Corpus, seeds: int = 6, only: str = "") -> None:
    import csss_core.engine as eng
    from client.media import GapFiller

    fr, seconds = 960, 30
    shipped = sv.HIDDEN_CHANNEL
    schedules = _only([("band 6-7.7 kHz (BAND_CHANNEL)", sv.BAND_CHANNEL),
                       ("lam 0.6 at -24 dB (ISS_CHANNEL)", sv.ISS_CHANNEL),
                       ("quiet, beacon every third copy", sv.QUIET_BEACON_CHANNEL),
                       ("quiet, beacon every 2nd copy", replace(sv.QUIET_BEACON_CHANNEL, beacon_every=2))], only)
    key = new_key()
    bits = sv.identity_bits(np.zeros(embedding_grid().dim), 0, 0, 1.0, key)  # a frame as long as the senders'
    frame = len(bits) * shipped.bit_len / 16000  # seconds per copy
    rows: dict[tuple[str, str, float], list[float]] = {}
    since = []
    try:
        for name, cfg in schedules:
            sv.HIDDEN_CHANNEL = eng.HIDDEN_CHANNEL = cfg
            for i, spk in enumerate(VOICES):
                x = voice(corpus, spk, 6)
                x48 = resample(np.tile(x, -(-seconds * 16000 // len(x)))[: seconds * 16000], 16000, 48000)
                sender = eng.SenderEngine(Anonymizer(asv_check=False), key, seed=100 + i)
                y = np.concatenate([sender.process(x48[j : j + fr]) for j in range(0, len(x48), fr)])
                since.append(sender.status.embedding_since_s or np.nan)
                yc = opus_roundtrip(y, 48000, 96_000)
                n = len(yc) // fr
                after = int(((sender.status.embedding_since_s or 0.0) + 2 * frame) * 48000) // fr + 1
                for loss in (0.0, 0.05, 0.10, 0.20):
                    for seed in range(seeds if loss else 1):
                        lost = np.random.default_rng(seed).random(n) < loss
                        # from the call's start, and joining after the preamble (a receiver restarted)
                        for start, label in ((0, "from the start"), (after + 37 * seed % 150, "joining late")):
                            g, rx = GapFiller(), eng.ReceiverEngine(Anonymizer(asv_check=False), key)
                            for k in start + np.flatnonzero(~lost[start:]):
                                for pcm, filled in g.push_marked(int(k) * fr, yc[k * fr : (k + 1) * fr]):
                                    rx.process(pcm, filled)
                                if rx.status.locked:
                                    break
                            t = rx.status.seconds_to_lock if rx.status.locked else None
                            rows.setdefault((name, label, loss), []).append(np.inf if t is None else t)
    finally:
        sv.HIDDEN_CHANNEL = eng.HIDDEN_CHANNEL = shipped
    print(f"{len(VOICES)} voices x {seconds} s, call engines through Opus 96k; the payload starts at "
          f"{np.nanmedian(since):.1f} s (median); lock seconds from the receiver's start (a late joiner starts "
          f"0-3 s after the acquisition preamble)")
    for (name, label, loss), t in rows.items():
        v = np.array(t)
        name += " (shipped)" if dict(schedules)[name] == shipped else ""
        print(f"{name:42s} {label:14s} loss {100 * loss:4.0f} %: locked {int(np.sum(np.isfinite(v)))}/{len(v)}, "
              f"median {np.median(v):.1f} s, p90 {np.percentile(v, 90):.1f} s, max {np.max(v):.1f} s")


def part_soft(corpus: Corpus) -> None:
    from csss_core.payload import SpeakerPayload, frame_bits, seal
    from csss_core.stego_ss import SSExtractor, embed, extract_ss

    floors = {"raw": 1e3, "-45 dBFS": 10 ** (-45 / 20), "-40 dBFS": 10 ** (-40 / 20), "-35 dBFS": 10 ** (-35 / 20)}
    shipped = SSExtractor.LEVEL_FLOOR
    carriers = {"lam 0.6 at -24 dB": replace(sv.ISS_CHANNEL, acquire_copies=0),
                "quiet (-32 dB, lam 0)": replace(sv.QUIET_BEACON_CHANNEL, acquire_copies=0, beacon_every=0)}
    flen = 1000
    bits = np.random.default_rng(0).integers(0, 2, flen).astype(np.uint8)
    errs: dict[tuple[str, int, str, int], list[float]] = {}
    opened: dict[str, int] = {}
    try:
        for spk in VOICES[:4]:
            x = voice(corpus, spk, 8)
            x = np.tile(x, -(-30 * 16000 // len(x)))[: 30 * 16000]
            for cname, cfg in carriers.items():
                y = embed(x, bits, cfg)
                for rate in (96_000, 32_000):
                    z = opus_roundtrip(y, 16000, rate)
                    for fname, fl in floors.items():
                        SSExtractor.LEVEL_FLOOR = fl
                        soft = SSExtractor(None, cfg)._soft(z, 0)[0]
                        m = len(soft) // flen * flen
                        toward = (soft[:m] * (2.0 * np.tile(bits, m // flen) - 1.0)).reshape(-1, flen)
                        for k in (1, 2, 4):
                            sums = toward[: len(toward) // k * k].reshape(-1, k, flen).sum(axis=1)
                            errs.setdefault((cname, rate, fname, k), []).append(float(np.mean(sums < 0)))
        key = bytes(range(32))
        pre = sv.ISS_CHANNEL
        for t in range(12):
            fb = frame_bits(seal(SpeakerPayload(np.random.default_rng(3).normal(size=32).astype(np.float32)), key,
                                 nonce=bytes([t]) * 12))
            x = voice(corpus, VOICES[t % len(VOICES)], 4)[: 16000 * 4]
            z = opus_roundtrip(embed(x, fb, pre), 16000, 96_000)
            for fname, fl in floors.items():
                SSExtractor.LEVEL_FLOOR = fl
                ex = extract_ss(z, key, pre)
                first = ex.seconds_to_lock is not None and ex.seconds_to_lock <= len(fb) * pre.bit_len / 16000 + 0.1
                opened[fname] = opened.get(fname, 0) + int(first)
    finally:
        SSExtractor.LEVEL_FLOOR = shipped
    print("raw bit errors % after summing 1 / 2 / 4 copies (4 voices x 30 s, mean), by soft-bit scaling:")
    for cname in carriers:
        for rate in (96_000, 32_000):
            cells = [f"{f}: " + " / ".join(f"{100 * np.mean(errs[(cname, rate, f, k)]):.2f}" for k in (1, 2, 4))
                     for f in floors]
            print(f"  {cname:22s} Opus {rate // 1000}k | " + " | ".join(cells))
    print("lam-1 preamble opened from its first copy alone (12 trials, Opus 96k): "
          + ", ".join(f"{f} {n}/12" for f, n in opened.items()) + f"; shipped floor {20 * np.log10(shipped):.0f} dBFS")


def _harmonic_basis(measured: Frames) -> tuple[torch.Tensor, torch.Tensor]:
    """(basis [frames, harmonics, N_CEP], usable [frames, harmonics]) at ``measured``'s F0.

    The vocoder's log envelope at frequency f is linear in the mel-cepstrum (inverse DCT, then linear
    interpolation between mel band centres: :func:`csss_core.vocoder.envelope_at`); ``basis`` is that map at
    each harmonic. Usable: below Nyquist - 200 Hz in voiced frames with harmonicity >= 0.5.
    """
    from csss_core import vocoder as voc

    k = torch.arange(1, voc.K_MAX + 1, dtype=torch.float64)
    hf = measured.f0[:, None] * k[None, :]
    usable = (hf < voc.SR / 2 - 200.0) & (measured.f0[:, None] > 0) & (measured.harm[:, None] >= 0.5)
    i0, fr = voc.mel_band_position(torch.where(usable, hf, 0.0))
    interp = torch.zeros(*hf.shape, voc.N_MEL, dtype=torch.float64)
    interp.scatter_(-1, i0[..., None], (1 - fr)[..., None])
    interp.scatter_add_(-1, (i0 + 1)[..., None], fr[..., None])
    return interp @ voc._DCT[: voc.N_CEP, :].T, usable


def _fit_envelope(basis: torch.Tensor, usable: torch.Tensor, target: torch.Tensor, prior: torch.Tensor,
                  pull: float) -> torch.Tensor:
    """Least-squares mel-cepstra for log envelope values ``target`` at the usable harmonics, pulled towards
    ``prior`` by ``pull`` (c0, the level, is free: the envelope does not use it); frames with fewer than 8
    usable harmonics keep ``prior``."""
    from csss_core.vocoder import N_CEP

    w = usable.double()
    reg = pull * torch.eye(N_CEP, dtype=torch.float64)
    reg[0, 0] = 1e-9
    gram = torch.einsum("nki,nkj,nk->nij", basis, basis, w) + reg
    fit = torch.linalg.solve(gram, torch.einsum("nki,nk,nk->ni", basis, target, w) + prior @ reg)
    return torch.where((usable.sum(1) >= 8)[:, None], fit, prior)


def harmonic_peaks(y: np.ndarray, measured: Frames) -> torch.Tensor:
    """Log power of each harmonic of ``measured``'s F0 in ``y`` (16 kHz), read at the frame centres: the
    peak of a 32 ms Hann window's spectrum (zero-padded to 4096 points) near each harmonic, refined by a
    parabola. Over the harmonic share (:func:`csss_core.vocoder._harmonic_fraction`) this is the log envelope
    up to a constant."""
    from csss_core import vocoder as voc

    n = len(measured)
    half = voc.ENV_WIN // 2
    yp = np.concatenate([np.zeros(half), np.asarray(y, np.float64), np.zeros(half + n * voc.HOP)])
    idx = np.arange(n)[:, None] * voc.HOP + np.arange(voc.ENV_WIN)[None, :]
    win = torch.from_numpy(yp[idx]) * torch.hann_window(voc.ENV_WIN, periodic=False, dtype=torch.float64)
    nfft = 4096
    spec = torch.log((torch.fft.rfft(win, nfft).abs() ** 2).clamp(min=1e-20))
    k = torch.arange(1, voc.K_MAX + 1, dtype=torch.float64)
    hf = measured.f0[:, None] * k[None, :]
    near = (hf / (voc.SR / nfft)).round().long().clamp(3, nfft // 2 - 4)
    around = torch.stack([spec.gather(1, near + d) for d in range(-3, 4)], -1)  # +-3 bins of 3.9 Hz
    top = around.argmax(-1).clamp(1, 5)
    a, b, c = (around.gather(-1, (top + d)[..., None])[..., 0] for d in (-1, 0, 1))
    den = a - 2 * b + c
    p = torch.where(den.abs() > 1e-9, 0.5 * (a - c) / den, torch.zeros_like(den)).clamp(-1, 1)
    peak = b - 0.25 * (a - c) * p
    return peak - torch.log(voc._harmonic_fraction(measured.harm, hf).clamp(min=1e-3))


def part_analysis(corpus: Corpus, ge2e: GE2EAttacker) -> None:
    from csss_core.evaluation.metrics import corpus_wer, pesq_wb
    from csss_core.evaluation.quality import get_asr

    anon = Anonymizer()
    cb = anon.cb
    asr = get_asr()
    lift = torch.from_numpy(receiver_lifter())
    gap = np.zeros(INTERNAL_SAMPLE_RATE * 3 // 10, np.float32)
    names = ["original", "copy synthesis (one pass)", "pseudo-voice", "receiver without the power de-blur",
             "receiver as shipped (+ power de-blur)", "+ true F0 and harmonicity", "+ true power", "+ true envelope",
             "envelope only at the pseudo-voice's harmonics", "envelope fitted to measured harmonic peaks",
             "all frames true"]
    cos: dict[str, list[float]] = {n: [] for n in names}
    pesq: dict[str, list[float]] = {n: [] for n in names}
    words: dict[str, list[tuple[str, str]]] = {n: [] for n in names}
    for i, spk in enumerate(VOICES):
        us = [u for u in corpus.split("trial") if u.speaker == spk][:5]
        bounds, parts, at = [], [], 0
        for u in us:
            w = read_audio(corpus.path(u))[0].astype(np.float32)
            parts += [w, gap]
            bounds.append((at, at + len(w)))
            at += len(w) + len(gap)
        x = np.concatenate(parts)
        r = anon.anonymize(x, 300 + i)
        real = SpeakerEmbedding.from_vector(r.source, cb.k)
        pseudo = SpeakerEmbedding.from_vector(r.pseudo, cb.k)
        sent = FrameMapper(cb, real, pseudo, r.offsets)(analyze(x))  # what the sender synthesized
        got = analyze(r.audio, voicing=RECEIVER_VOICING)
        n = min(len(sent), len(got))
        sent, got = sent.select(slice(0, n)), got.select(slice(0, n))
        lifted = got.mcep * lift
        back = FrameMapper(cb, pseudo, real, r.offsets.inverse(), undo=True)  # the lifter is applied above
        basis, usable = _harmonic_basis(got)
        at_harmonics = torch.einsum("nki,ni->nk", basis, sent.mcep)  # the true envelope where y has harmonics
        peaks = harmonic_peaks(r.audio, got)  # what a peak-reading analysis measures there
        p = got.power  # de-blurred as the receiver's vocoder stage does (the last frame has no next one)
        power = torch.cat([deblurred_power(p[:-1], torch.cat([p[:1], p[:-2]]), p[1:], POWER_DEBLUR), p[-1:]])
        frames = {
            names[3]: Frames(got.f0, got.harm, got.power, lifted),
            names[4]: Frames(got.f0, got.harm, power, lifted),
            names[5]: Frames(sent.f0, sent.harm, power, lifted),
            names[6]: Frames(got.f0, got.harm, sent.power, lifted),
            names[7]: Frames(got.f0, got.harm, power, sent.mcep),
            names[8]: Frames(got.f0, got.harm, power, _fit_envelope(basis, usable, at_harmonics, lifted, 1e-3)),
            names[9]: Frames(got.f0, got.harm, power, _fit_envelope(basis, usable, peaks, lifted, 0.05)),
            names[10]: sent,
        }
        out = {names[0]: x, names[1]: process_offline(x), names[2]: r.audio}
        out.update({k: synth(back(f), len(x)) for k, f in frames.items()})
        e = ge2e.embed(x)
        for k, y in out.items():
            cos[k].append(float(e @ ge2e.embed(y)))
            pesq[k].append(pesq_wb(x, y))
            words[k] += [(u.text, asr.transcribe(y[a:b])) for (a, b), u in zip(bounds, us, strict=True)]
        print(f"{spk}: " + ", ".join(f"{k.split(' (')[0]} {cos[k][-1]:.3f}" for k in names[2:]), flush=True)
    print(f"\n{'':48s} GE2E cos  PESQ-WB  WER %   ({len(VOICES)} voices x 5 sentences, no hidden channel, one run)")
    for k in names:
        print(f"{k:48s} {np.median(cos[k]):8.3f} {np.median(pesq[k]):8.2f} {100 * corpus_wer(words[k]):6.1f}")


def main() -> None:
    """Run one part."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="corpus")
    parts = ["sender_voicing", "vocoder", "voicing", "schedule", "loss", "soft", "analysis"]
    ap.add_argument("--part", choices=parts, required=True)
    ap.add_argument("--only", default="", help="schedule/loss: only the schedules whose names contain one of "
                    "these comma-separated words (e.g. BAND_CHANNEL)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    ge2e = GE2EAttacker()
    if a.part == "voicing":
        part_voicing(ge2e)
    elif a.part == "sender_voicing":
        part_sender_voicing(Corpus.load(a.corpus), ge2e)
    elif a.part == "vocoder":
        part_vocoder(Corpus.load(a.corpus), ge2e)
    elif a.part == "loss":
        part_loss(Corpus.load(a.corpus), only=a.only)
    elif a.part == "soft":
        part_soft(Corpus.load(a.corpus))
    elif a.part == "analysis":
        part_analysis(Corpus.load(a.corpus), ge2e)
    else:
        part_schedule(Corpus.load(a.corpus), ge2e, only=a.only)


if __name__ == "__main__":
    main()
