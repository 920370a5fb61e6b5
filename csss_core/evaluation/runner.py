"""Run the evaluation of several systems side by side on one corpus.

Scenarios (VoicePrivacy terms; speaker-level enrollment, cosine scoring):

- ``ignorant``: original enrollment vs processed trials (a fresh pseudo-voice per utterance).
- ``lazy_spk``: the attacker processes its enrollment with the same public system; one
  pseudo-voice per speaker on each side (different seeds for enrollment and trials).
- ``lazy_utt``: as ``lazy_spk`` but a fresh pseudo-voice per utterance on both sides (per call).

Utility and quality are measured on the per-utterance processed trials.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from csss_core.audio import INTERNAL_SAMPLE_RATE, read_audio, write_audio
from csss_core.corpus import Corpus, Utterance
from csss_core.evaluation import metrics
from csss_core.evaluation.attackers import get_attacker, speaker_model
from csss_core.evaluation.systems import System, make_system

SCENARIOS = ("ignorant", "lazy_spk", "lazy_utt")

Progress = Callable[[str, int, int], None]


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from any parts, stable across runs and machines."""
    h = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


@dataclass
class EvalConfig:
    """What to evaluate and how."""

    systems: list[str]
    attackers: list[str] = field(default_factory=lambda: ["ge2e", "dvector"])
    out_dir: Path = Path("eval_out")
    base_seed: int = 0
    wer: bool = True
    quality: bool = True
    save_audio: bool = True


@dataclass
class SystemResult:
    """All figures for one system."""

    name: str
    eer: dict[str, dict[str, float]]  # attacker -> scenario -> EER (fraction)
    wer: float
    dnsmos: dict[str, float]
    plcmos: float
    pesq: float
    stoi: float
    snr_db: float
    rho_f0: float
    rtf: float
    n_trials: int
    extras: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict, repr=False)


def _nanmedian(v: list[float]) -> float:
    a = np.asarray([x for x in v if x is not None and not np.isnan(x)], dtype=np.float64)
    return float(np.median(a)) if a.size else float("nan")


def _nanmean(v: list[float]) -> float:
    a = np.asarray([x for x in v if x is not None and not np.isnan(x)], dtype=np.float64)
    return float(np.mean(a)) if a.size else float("nan")


def _score(enroll: dict[str, list[np.ndarray]], trials: list[tuple[str, np.ndarray]]) -> dict[str, list[float]]:
    models = {spk: speaker_model(embs) for spk, embs in enroll.items()}
    tgt: list[float] = []
    non: list[float] = []
    for spk, e in trials:
        for mspk, m in models.items():
            (tgt if mspk == spk else non).append(float(e @ m))
    return {"target": tgt, "nontarget": non}


class Evaluator:
    """Holds the corpus audio, the original-speech figures and the loaded models."""

    def __init__(self, corpus: Corpus, config: EvalConfig, progress: Progress | None = None) -> None:
        self.corpus = corpus
        self.cfg = config
        self.progress = progress or (lambda _d, _i, _n: None)
        self.audio: dict[str, np.ndarray] = {}
        for u in corpus.utterances:
            self.audio[u.utt_id], _ = read_audio(corpus.path(u), INTERNAL_SAMPLE_RATE)
        self.enroll = corpus.split("enroll")
        self.trials = corpus.split("trial")
        if not self.enroll or not self.trials:
            raise ValueError("corpus needs both enrollment and trial utterances")
        if len({u.speaker for u in self.trials}) < 2:
            raise ValueError("corpus needs at least two speakers for an EER")
        self.attackers = {n: get_attacker(n) for n in config.attackers}
        self.orig_emb: dict[str, dict[str, np.ndarray]] = {n: {} for n in self.attackers}
        for i, u in enumerate(corpus.utterances):
            for n, a in self.attackers.items():
                self.orig_emb[n][u.utt_id] = a.embed(self.audio[u.utt_id])
            self.progress("embedding originals", i + 1, len(corpus.utterances))

    def _process(self, system: System, utts: list[Utterance], side: str, tag: str,
                 rtf: list[float]) -> dict[str, dict[str, np.ndarray]]:
        """Processed audio for each utterance: {"utt": ..., "spk": ...} versions."""
        out: dict[str, dict[str, np.ndarray]] = {}
        for i, u in enumerate(utts):
            x = self.audio[u.utt_id]
            versions: dict[str, np.ndarray] = {}
            seeds = {
                "utt": derive_seed(self.cfg.base_seed, "utt", u.utt_id, side),
                "spk": derive_seed(self.cfg.base_seed, "spk", u.speaker, side),
            }
            for mode, seed in seeds.items():
                if not system.seeded and versions:
                    versions[mode] = versions["utt"]
                    continue
                t0 = time.process_time()
                y = system.process(x, seed)
                rtf.append((time.process_time() - t0) / (len(x) / INTERNAL_SAMPLE_RATE))
                if y.ndim != 1 or len(y) == 0 or not np.all(np.isfinite(y)):
                    raise RuntimeError(f"{system.name} returned invalid audio for {u.utt_id}")
                versions[mode] = y
            out[u.utt_id] = versions
            self.progress(f"{tag}: {system.name} {side}", i + 1, len(utts))
        return out

    def evaluate(self, system: System) -> SystemResult:
        """All figures for one system."""
        rtf: list[float] = []
        proc_tr = self._process(system, self.trials, "trial", "process", rtf)
        proc_en = self._process(system, self.enroll, "enroll", "process", rtf)
        eer: dict[str, dict[str, float]] = {}
        scores: dict[str, dict[str, dict[str, list[float]]]] = {}
        for n, a in self.attackers.items():
            emb_tr = {m: {u.utt_id: a.embed(proc_tr[u.utt_id][m]) for u in self.trials} for m in ("utt", "spk")}
            emb_en = {m: {u.utt_id: a.embed(proc_en[u.utt_id][m]) for u in self.enroll} for m in ("utt", "spk")}

            def enroll_from(src: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
                d: dict[str, list[np.ndarray]] = {}
                for u in self.enroll:
                    d.setdefault(u.speaker, []).append(src[u.utt_id])
                return d

            def trials_from(src: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
                return [(u.speaker, src[u.utt_id]) for u in self.trials]

            sc = {
                "ignorant": _score(enroll_from(self.orig_emb[n]), trials_from(emb_tr["utt"])),
                "lazy_spk": _score(enroll_from(emb_en["spk"]), trials_from(emb_tr["spk"])),
                "lazy_utt": _score(enroll_from(emb_en["utt"]), trials_from(emb_tr["utt"])),
            }
            scores[n] = sc
            eer[n] = {k: metrics.compute_eer(np.array(v["target"]), np.array(v["nontarget"])).eer
                      for k, v in sc.items()}
            self.progress(f"scoring: {system.name}", 1, 1)

        wer = float("nan")
        if self.cfg.wer:
            from csss_core.evaluation.quality import get_asr

            asr = get_asr()
            pairs = []
            for i, u in enumerate(self.trials):
                pairs.append((u.text, asr.transcribe(proc_tr[u.utt_id]["utt"])))
                self.progress(f"ASR: {system.name}", i + 1, len(self.trials))
            wer = metrics.corpus_wer(pairs)

        dn: dict[str, list[float]] = {"sig": [], "bak": [], "ovrl": [], "p808": []}
        plc: list[float] = []
        pesq_l: list[float] = []
        stoi_l: list[float] = []
        snr_l: list[float] = []
        rho_l: list[float] = []
        for i, u in enumerate(self.trials):
            x = self.audio[u.utt_id]
            y = proc_tr[u.utt_id]["utt"]
            if self.cfg.quality:
                from csss_core.evaluation.quality import dnsmos, plcmos

                d = dnsmos(y)
                for k in dn:
                    dn[k].append(d[k])
                plc.append(plcmos(y))
            rho_l.append(metrics.rho_f0(x, y))
            if metrics.aligned(x, y):
                snr_l.append(metrics.snr_db(x, y))
                if self.cfg.quality:
                    pesq_l.append(metrics.pesq_wb(x, y))
                    stoi_l.append(metrics.stoi(x, y))
            if self.cfg.save_audio:
                write_audio(self.cfg.out_dir / "audio" / system.name / f"{u.utt_id}.wav", y, INTERNAL_SAMPLE_RATE)
            self.progress(f"quality: {system.name}", i + 1, len(self.trials))
        self.cfg.out_dir.mkdir(parents=True, exist_ok=True)
        return SystemResult(
            name=system.name,
            eer=eer,
            wer=wer,
            dnsmos={k: _nanmean(v) for k, v in dn.items()},
            plcmos=_nanmean(plc),
            pesq=_nanmean(pesq_l),
            stoi=_nanmean(stoi_l),
            snr_db=_nanmedian(snr_l),
            rho_f0=_nanmean(rho_l),
            rtf=_nanmedian(rtf),
            n_trials=len(self.trials),
            extras=system.report(self.cfg.out_dir) if hasattr(system, "report") else {},
            scores=scores,
        )


def _eer_pct(r: SystemResult, attacker: str, scenario: str) -> float:
    return 100 * r.eer[attacker][scenario]


def _fmt(v: float, pct: bool = False, nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return f"{100 * v:.1f}" if pct else f"{v:.{nd}f}"


def results_table(results: list[SystemResult], attackers: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the Table-I-like summary."""
    header = ["system"]
    for a in attackers:
        header += [f"EER% {a} ign", f"EER% {a} lazy-spk", f"EER% {a} lazy-utt"]
    header += ["WER%", "DNSMOS SIG", "BAK", "OVRL", "PLCMOS", "PESQ-WB", "STOI", "SNR dB", "rho-F0", "RTF"]
    rows = []
    for r in results:
        row = [r.name]
        for a in attackers:
            row += [_fmt(r.eer[a][s], pct=True) for s in SCENARIOS]
        row += [_fmt(r.wer, pct=True), _fmt(r.dnsmos.get("sig", float("nan"))),
                _fmt(r.dnsmos.get("bak", float("nan"))), _fmt(r.dnsmos.get("ovrl", float("nan"))),
                _fmt(r.plcmos), _fmt(r.pesq), _fmt(r.stoi), _fmt(r.snr_db, nd=1), _fmt(r.rho_f0),
                _fmt(r.rtf, nd=3)]
        rows.append(row)
    return header, rows


def format_terminal(header: list[str], rows: list[list[str]]) -> str:
    """Fixed-width text table."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def format_markdown(header: list[str], rows: list[list[str]]) -> str:
    """GitHub Markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def write_report(results: list[SystemResult], corpus: Corpus, cfg: EvalConfig, elapsed_s: float) -> Path:
    """Write results.json, report.md and PNG plots into ``cfg.out_dir``; return the report path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    header, rows = results_table(results, cfg.attackers)

    # DET curves, one figure per attacker.
    det_files = []
    ticks = np.array([0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95])
    for a in cfg.attackers:
        fig, ax = plt.subplots(figsize=(6, 6))
        for r in results:
            for s, style in zip(SCENARIOS, ["-", "--", ":"], strict=True):
                sc = r.scores[a][s]
                far, frr = metrics.det_points(np.array(sc["target"]), np.array(sc["nontarget"]))
                clip = np.clip
                ax.plot(norm.ppf(clip(far, 1e-4, 1 - 1e-4)), norm.ppf(clip(frr, 1e-4, 1 - 1e-4)), style,
                        label=f"{r.name} {s} (EER {100 * r.eer[a][s]:.1f}%)")
        ax.set_xticks(norm.ppf(ticks))
        ax.set_xticklabels([f"{100 * t:g}" for t in ticks])
        ax.set_yticks(norm.ppf(ticks))
        ax.set_yticklabels([f"{100 * t:g}" for t in ticks])
        lim = (norm.ppf(0.0005), norm.ppf(0.9995))
        ax.set_xlim(*lim)
        ax.set_ylim(*lim)
        ax.set_xlabel("false acceptance rate (%)")
        ax.set_ylabel("false rejection rate (%)")
        ax.set_title(f"DET, attacker {a}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        f = out / f"det_{a}.png"
        fig.savefig(f, dpi=110)
        plt.close(fig)
        det_files.append(f.name)

    # Bars per metric.
    bar_metrics: list[tuple[str, Callable[[SystemResult], float]]] = []
    for a in cfg.attackers:
        for s in SCENARIOS:
            bar_metrics.append((f"EER% {a} {s}", functools.partial(_eer_pct, attacker=a, scenario=s)))
    bar_metrics += [
        ("WER%", lambda r: 100 * r.wer),
        ("DNSMOS OVRL", lambda r: r.dnsmos.get("ovrl", float("nan"))),
        ("PLCMOS", lambda r: r.plcmos),
        ("rho-F0", lambda r: r.rho_f0),
        ("RTF", lambda r: r.rtf),
    ]
    ncol = 4
    nrow = math.ceil(len(bar_metrics) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 2.8 * nrow))
    for ax, (title, fn) in zip(np.ravel(axes), bar_metrics, strict=False):
        vals = [fn(r) for r in results]
        ax.bar([r.name for r in results], [0 if not np.isfinite(v) else v for v in vals],
               color=[f"C{i}" for i in range(len(results))])
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelsize=7, rotation=30)
    for ax in np.ravel(axes)[len(bar_metrics):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "metrics.png", dpi=100)
    plt.close(fig)

    speakers = sorted({u.speaker for u in corpus.utterances})
    n_en = len(corpus.split("enroll"))
    n_tr = len(corpus.split("trial"))
    md = [
        "# CSSS evaluation report",
        "",
        f"Corpus: `{corpus.root}` ({len(speakers)} speakers, {n_en} enrollment and {n_tr} trial utterances, 16 kHz).",
        f"Attackers: {', '.join(cfg.attackers)} (speaker-level enrollment, cosine scoring). Base seed {cfg.base_seed}.",
        f"Wall time {elapsed_s:.0f} s.",
        "",
        "EER: `ign` = ignorant (original enrollment vs processed trials, fresh pseudo-voice per utterance);",
        "`lazy-spk` = lazy-informed with one pseudo-voice per speaker; `lazy-utt` = lazy-informed with a fresh",
        "pseudo-voice per utterance. Closer to 50% is more private. WER with Whisper tiny.en (faster-whisper).",
        "PESQ-WB, STOI and SNR are against the original and only where the output keeps the input's timing.",
        "RTF = process CPU seconds / audio seconds, median, one thread.",
        "",
        format_markdown(header, rows),
        "",
        *[f"![DET {f}]({f})" for f in det_files],
        "",
        "![metrics](metrics.png)",
        "",
    ]
    for r in results:
        if r.extras:
            md += [f"## {r.name}", ""]
            md += [f"- {k}: {v}" for k, v in r.extras.items() if k != "images"]
            md += [""] + [f"![{img}]({img})" for img in r.extras.get("images", [])] + [""]
    report = out / "report.md"
    report.write_text("\n".join(md), encoding="utf-8")
    payload: dict[str, Any] = {
        "corpus": str(corpus.root),
        "speakers": speakers,
        "attackers": cfg.attackers,
        "base_seed": cfg.base_seed,
        "results": [
            {k: v for k, v in r.__dict__.items() if k != "scores"} | {"scores": r.scores} for r in results
        ],
    }
    (out / "results.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return report


def run_eval(corpus: Corpus, cfg: EvalConfig, progress: Progress | None = None) -> list[SystemResult]:
    """Evaluate every system in ``cfg`` on ``corpus`` and write the report."""
    import torch

    torch.set_num_threads(1)  # RTF is defined on one thread
    t0 = time.time()
    systems = [make_system(s) for s in cfg.systems]  # fail on a bad spec before any heavy work
    ev = Evaluator(corpus, cfg, progress)
    results = [ev.evaluate(s) for s in systems]
    write_report(results, corpus, cfg, time.time() - t0)
    return results
