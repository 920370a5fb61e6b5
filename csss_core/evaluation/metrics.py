"""Metrics: EER and DET curves, WER, SNR, rho-F0, PESQ-WB and STOI.

Everything here is computed from numbers passed in, so each metric can be
tested on cases with a known answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from csss_core.audio import INTERNAL_SAMPLE_RATE


@dataclass(frozen=True)
class EERResult:
    """Equal error rate (fraction in [0, 1]) and the score threshold where it occurs."""

    eer: float
    threshold: float


def error_rates(target: np.ndarray, nontarget: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-rejection and false-acceptance rates at every distinct threshold.

    A trial is accepted when its score is >= the threshold.

    Returns:
        ``(thresholds, frr, far)``, thresholds ascending.
    """
    tgt = np.asarray(target, dtype=np.float64).ravel()
    non = np.asarray(nontarget, dtype=np.float64).ravel()
    if tgt.size == 0 or non.size == 0:
        raise ValueError("need at least one target and one non-target score")
    if not (np.all(np.isfinite(tgt)) and np.all(np.isfinite(non))):
        raise ValueError("scores must be finite")
    thr = np.unique(np.concatenate([tgt, non, [np.inf]]))
    tgt_s = np.sort(tgt)
    non_s = np.sort(non)
    # rejected targets: score < thr
    frr = np.searchsorted(tgt_s, thr, side="left") / tgt.size
    # accepted non-targets: score >= thr
    far = 1.0 - np.searchsorted(non_s, thr, side="left") / non.size
    return thr, frr, far


def compute_eer(target: np.ndarray, nontarget: np.ndarray) -> EERResult:
    """Equal error rate of verification scores (higher score = more likely the same speaker).

    Where FRR and FAR cross between two thresholds, the EER is the midpoint of
    the two rates at the crossing (the convex-hull-free convention used by the
    VoicePrivacy tools within one trial of resolution).
    """
    thr, frr, far = error_rates(target, nontarget)
    diff = frr - far  # rises from -1 (accept all) to +1 (reject all)
    i = int(np.searchsorted(diff, 0.0, side="left"))
    if i == 0:
        return EERResult(float((frr[0] + far[0]) / 2), float(thr[0]))
    if i >= len(diff):
        return EERResult(float((frr[-1] + far[-1]) / 2), float(thr[-1]))
    # linear interpolation between points i-1 (diff<0) and i (diff>=0)
    d0, d1 = diff[i - 1], diff[i]
    w = 0.0 if d1 == d0 else -d0 / (d1 - d0)
    eer = (1 - w) * (frr[i - 1] + far[i - 1]) / 2 + w * (frr[i] + far[i]) / 2
    return EERResult(float(eer), float(thr[i]))


def det_points(target: np.ndarray, nontarget: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FAR, FRR) pairs for a DET curve."""
    _, frr, far = error_rates(target, nontarget)
    return far, frr


_PUNCT = re.compile(r"[^a-z0-9' ]+")
_NUMBERS = {
    "0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five",
    "6": "six", "7": "seven", "8": "eight", "9": "nine", "10": "ten", "50": "fifty",
}


def normalize_text(s: str) -> str:
    """Lower-case, spell out small numbers, drop punctuation other than apostrophes, squeeze spaces."""
    s = s.lower().replace("-", " ")
    s = " ".join(_NUMBERS.get(w, w) for w in s.split())
    s = _PUNCT.sub(" ", s)
    return " ".join(s.split())


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, number of reference words) after :func:`normalize_text`."""
    import jiwer

    ref = normalize_text(reference)
    hyp = normalize_text(hypothesis)
    n_ref = len(ref.split())
    if n_ref == 0:
        raise ValueError("empty reference")
    if not hyp:
        return n_ref, n_ref
    out = jiwer.process_words(ref, hyp)
    return int(out.substitutions + out.deletions + out.insertions), n_ref


def corpus_wer(pairs: list[tuple[str, str]]) -> float:
    """Word error rate over a list of (reference, hypothesis) pairs, as a fraction."""
    errs = 0
    words = 0
    for ref, hyp in pairs:
        e, n = word_errors(ref, hyp)
        errs += e
        words += n
    return errs / words if words else float("nan")


def aligned(reference: np.ndarray, degraded: np.ndarray, tolerance: float = 0.01) -> bool:
    """True when two signals have lengths within ``tolerance`` (a fraction) of each other."""
    n = max(len(reference), 1)
    return abs(len(reference) - len(degraded)) <= tolerance * n


def snr_db(reference: np.ndarray, degraded: np.ndarray) -> float:
    """Signal-to-noise ratio of ``degraded`` against ``reference`` in dB (same timing assumed)."""
    n = min(len(reference), len(degraded))
    r = np.asarray(reference[:n], np.float64)
    e = np.asarray(degraded[:n], np.float64) - r
    p_sig = float(np.sum(r**2))
    p_err = float(np.sum(e**2))
    if p_err == 0.0:
        return float("inf")
    if p_sig == 0.0:
        return float("-inf")
    return 10.0 * np.log10(p_sig / p_err)


def f0_track(x: np.ndarray, sr: int = INTERNAL_SAMPLE_RATE, frame_ms: float = 10.0) -> np.ndarray:
    """F0 in Hz per 10 ms frame (0 where unvoiced), WORLD's DIO refined by StoneMask."""
    import pyworld

    xd = np.asarray(x, dtype=np.float64)
    f0, t = pyworld.dio(xd, sr, f0_floor=60.0, f0_ceil=500.0, frame_period=frame_ms)
    return np.asarray(pyworld.stonemask(xd, f0, t, sr))


def rho_f0(reference: np.ndarray, processed: np.ndarray, sr: int = INTERNAL_SAMPLE_RATE) -> float:
    """Pearson correlation of F0 over frames voiced in both signals (VoicePrivacy rho-F0).

    Returns NaN when fewer than 10 frames are voiced in both.
    """
    a = f0_track(reference, sr)
    b = f0_track(processed, sr)
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    both = (a > 0) & (b > 0)
    if int(both.sum()) < 10:
        return float("nan")
    a, b = a[both], b[both]
    if np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def pesq_wb(reference: np.ndarray, degraded: np.ndarray, sr: int = INTERNAL_SAMPLE_RATE) -> float:
    """PESQ wide-band MOS-LQO (ITU-T P.862.2) of ``degraded`` against ``reference``; NaN if it fails."""
    from pesq import PesqError, pesq

    n = min(len(reference), len(degraded))
    try:
        return float(pesq(sr, np.asarray(reference[:n], np.float64), np.asarray(degraded[:n], np.float64), "wb"))
    except (PesqError, ValueError):
        return float("nan")


def stoi(reference: np.ndarray, degraded: np.ndarray, sr: int = INTERNAL_SAMPLE_RATE) -> float:
    """Short-time objective intelligibility of ``degraded`` against ``reference`` (0..1)."""
    from pystoi import stoi as _stoi

    n = min(len(reference), len(degraded))
    return float(_stoi(np.asarray(reference[:n], np.float64), np.asarray(degraded[:n], np.float64), sr))
