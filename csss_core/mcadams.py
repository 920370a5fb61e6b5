"""The VoicePrivacy McAdams-coefficient anonymizer (Patino et al. 2021), reimplemented.

Per 20 ms frame (10 ms hop, Hann analysis/synthesis windows): LPC analysis of
order 20, every complex pole pair's angle phi (radians) replaced by phi**alpha
with the radius kept, the LPC residual re-filtered through the new all-pole
filter, overlap-add. As in the VPC 2022 baseline B2, alpha is drawn uniformly
from [0.5, 0.9] per utterance (from the given seed).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_toeplitz
from scipy.signal import lfilter

ALPHA_RANGE = (0.5, 0.9)


def lpc(frame: np.ndarray, order: int) -> np.ndarray:
    """LPC polynomial ``[1, a1, ..., a_order]`` by the autocorrelation method."""
    r = np.correlate(frame, frame, mode="full")[len(frame) - 1 : len(frame) + order]
    if r[0] <= 0:
        out = np.zeros(order + 1)
        out[0] = 1.0
        return out
    r = r.copy()
    r[0] *= 1.0 + 1e-9  # white-noise correction keeps the system well conditioned
    a = solve_toeplitz((r[:order], r[:order]), -r[1 : order + 1])
    return np.concatenate([[1.0], a])


def mcadams(x: np.ndarray, sr: int, alpha: float, win_ms: float = 20.0, hop_ms: float = 10.0,
            order: int = 20) -> np.ndarray:
    """Apply the McAdams transformation with coefficient ``alpha`` to mono ``x``.

    The output has the input's length and RMS level.
    """
    x = np.asarray(x, dtype=np.float64)
    eps = np.finfo(np.float32).eps
    win = int(win_ms * sr / 1000)
    hop = int(hop_ms * sr / 1000)
    w_pr = np.hanning(win)
    k = np.sum(w_pr) / hop
    w = np.sqrt(w_pr / k)  # analysis and synthesis windows that overlap-add to one
    n_frames = 1 + (len(x) - win) // hop if len(x) >= win else 0
    out = np.zeros(len(x))
    xe = x + eps
    for m in range(n_frames):
        s = m * hop
        frame = xe[s : s + win] * w
        a = lpc(frame, order)
        poles = np.roots(a)
        cplx = np.flatnonzero(np.imag(poles) > 0)
        new_poles = poles.copy()
        ang = np.clip(np.angle(poles[cplx]) ** alpha, 0.0, np.pi)
        rad = np.abs(poles[cplx])
        new_poles[cplx] = rad * np.exp(1j * ang)
        conj = np.flatnonzero(np.imag(poles) < 0)
        # each negative-angle pole mirrors the positive one with the same radius
        for i in conj:
            j = cplx[np.argmin(np.abs(poles[cplx] - np.conj(poles[i])))]
            new_poles[i] = np.conj(new_poles[j])
        a_new = np.real(np.poly(new_poles))
        res = lfilter(a, [1.0], frame)
        rec = lfilter([1.0], a_new, res) * w
        out[s : s + win] += rec
    rms_in = np.sqrt(np.mean(x**2)) if len(x) else 0.0
    rms_out = np.sqrt(np.mean(out**2)) if len(out) else 0.0
    if rms_out > 0:
        out *= rms_in / rms_out
    peak = np.max(np.abs(out)) if len(out) else 0.0
    if peak > 0.99:
        out *= 0.99 / peak
    return out.astype(np.float32)


def draw_alpha(seed: int) -> float:
    """The per-utterance McAdams coefficient for ``seed``, uniform in [0.5, 0.9]."""
    return float(np.random.default_rng(seed).uniform(*ALPHA_RANGE))
