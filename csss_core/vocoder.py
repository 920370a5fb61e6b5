"""A streaming harmonic-plus-noise source-filter vocoder in torch ops.

Analysis (per 10 ms frame, 20 ms look-ahead): F0 and harmonicity by YIN over a 40 ms window; frame
power; a spectral envelope made pitch-independent by smoothing the power spectrum over one F0
width, summarized as a 20-coefficient mel-cepstrum (DCT of 40 log mel-band powers).

Synthesis: a sum of harmonics of the (possibly modified) F0 whose amplitudes follow the (possibly
modified) envelope, plus envelope-shaped noise for the aperiodic part, scaled to the frame power.
Parameters are interpolated per sample between frame centres; harmonic phase is accumulated, so
the output has no frame-rate discontinuities.

:class:`VocoderStage` runs analysis -> ``transform(frames)`` -> synthesis on 16 kHz chunks whose
length is a multiple of :data:`HOP`; its output is the input's timeline delayed by exactly
:data:`DELAY` samples (the look-ahead plus the one hop synthesis interpolates over).
:func:`process_offline` runs the same code on a whole signal and removes the delay, so streaming
output equals offline output by construction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from csss_core.audio import INTERNAL_SAMPLE_RATE, AudioChunk

SR = INTERNAL_SAMPLE_RATE
HOP = 160  # 10 ms frames
F0_WIN = 640  # 40 ms YIN window
LOOKAHEAD = F0_WIN // 2  # samples of future input each frame needs (20 ms)
# The stage's delay: the look-ahead, plus one frame because synthesis reaches frame t's parameters at
# the end of the hop it renders (it interpolates from frame t-1 to frame t), and frame t's noise
# segment is centred one hop later too; so output sample i renders input time i - DELAY (30 ms).
DELAY = LOOKAHEAD + HOP
ENV_WIN = 512
ENV_NFFT = 1024
N_MEL = 40
N_CEP = 24
F0_MIN, F0_MAX = 60.0, 500.0
TAU_MIN = int(SR / F0_MAX)
TAU_MAX = int(SR / F0_MIN) + 1
YIN_W2 = F0_WIN - TAU_MAX
K_MAX = int(SR / 2 / F0_MIN)
NOISE_WIN = 2 * HOP
NOISE_TABLE = 1 << 16
SILENCE_POWER = 10 ** (-70 / 10)


def _mel(f: torch.Tensor | float) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(f, dtype=torch.float64) / 700.0)


def _mel_inv(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10 ** (m / 2595.0) - 1.0)


def _mel_filterbank(n_bins: int, nfft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Triangular mel filters [N_MEL, n_bins] and their centre frequencies in mel."""
    mels = torch.linspace(float(_mel(0.0)), float(_mel(SR / 2)), N_MEL + 2, dtype=torch.float64)
    hz = _mel_inv(mels)
    freqs = torch.arange(n_bins, dtype=torch.float64) * SR / nfft
    fb = torch.zeros(N_MEL, n_bins, dtype=torch.float64)
    for i in range(N_MEL):
        lo, c, hi = hz[i], hz[i + 1], hz[i + 2]
        up = (freqs - lo) / (c - lo)
        down = (hi - freqs) / (hi - c)
        fb[i] = torch.clamp(torch.minimum(up, down), min=0.0)
    fb = fb / fb.sum(dim=1, keepdim=True).clamp(min=1e-9)
    return fb, mels[1:-1]


def _dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix [n, n]."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    m = torch.cos(math.pi / n * (i + 0.5) * k) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


_FB, _MEL_CENTRES = _mel_filterbank(ENV_NFFT // 2 + 1, ENV_NFFT)
_DCT = _dct_matrix(N_MEL)
_HANN_ENV = torch.hann_window(ENV_WIN, periodic=False, dtype=torch.float64)
_HANN_NOISE = torch.hann_window(NOISE_WIN, periodic=True, dtype=torch.float64)
_NOISE = torch.from_numpy(np.random.default_rng(20240611).standard_normal(NOISE_TABLE))


@dataclass
class Frames:
    """Vocoder parameters of ``n`` frames (float64 tensors on one device).

    Attributes:
        f0: Hz, 0 where unvoiced. [n]
        harm: harmonic fraction 0..1. [n]
        power: mean power of the frame (linear). [n]
        mcep: mel-cepstrum of the pitch-free envelope (c0 = log level). [n, N_CEP]
    """

    f0: torch.Tensor
    harm: torch.Tensor
    power: torch.Tensor
    mcep: torch.Tensor

    def __len__(self) -> int:
        return int(self.f0.shape[0])

    def select(self, idx: slice | torch.Tensor) -> Frames:
        """A subset of frames."""
        return Frames(self.f0[idx], self.harm[idx], self.power[idx], self.mcep[idx])

    @staticmethod
    def cat(parts: list[Frames]) -> Frames:
        """Concatenate frames."""
        return Frames(torch.cat([p.f0 for p in parts]), torch.cat([p.harm for p in parts]),
                      torch.cat([p.power for p in parts]), torch.cat([p.mcep for p in parts]))


@dataclass(frozen=True)
class Voicing:
    """How the analysis turns YIN's aperiodicity (0 = periodic) into voicing and harmonicity.

    A frame is voiced below ``threshold``; its harmonic fraction falls linearly from 1 to 0 over the
    aperiodicity range [``full`` - 0.25, ``full``].
    """

    threshold: float = 0.3
    full: float = 0.35


# Natural speech. Voiced below aperiodicity 0.5, fully harmonic below 0.3 (the harmonic share falls to 0.2
# at 0.5): real voiced speech often measures 0.1-0.35, and a stricter setting (0.3 / 0.35) mixed noise into
# it and left weak voicing unvoiced. ``benchmarks/receiver_design.py --part sender_voicing`` (copy
# synthesis, one run): on a real voice (alsa-utils' recordings) PESQ-WB 1.81 -> 2.39 and DNSMOS OVRL 2.96 ->
# 3.12, on 6 corpus voices (medians) 1.91 -> 2.38 and 2.76 -> 2.84; GE2E cosine of the copy 0.957 -> 0.959.
# Keeping weakly periodic frames (0.3-0.5, voiced fricatives among them) fully harmonic as well (0.5 / 0.7)
# gave the same copy quality (2.41 / 2.43) but cost intelligibility after conversion: anonymized WER 24.0
# vs 20.2 here (``csss eval --systems csss --max-speakers 8 --max-trials 5 --no-quality``, one run each;
# 0.5 / 0.6: 19.9, 0.5 / 0.65: 20.8, 0.4 / 0.6: 20.2, 0.45 / 0.55: 21.2; the old 0.3 / 0.35: 18.3).
SENDER_VOICING = Voicing(threshold=0.5, full=0.55)

# The receiver's setting for analyzing this vocoder's own output. While the sender's setting was stricter
# (0.3 / 0.35) the receiver needed a looser one (0.6 / 0.8: weakly harmonic frames come back more
# aperiodic, the noise part being re-drawn). With the sender's present setting the same one is as good
# (``benchmarks/receiver_design.py --part voicing``, reconstruction GE2E cosine on 8 espeak-ng pool
# voices, not the evaluation corpus: 0.928 at the sender's setting, 0.928 / 0.926 / 0.923 / 0.921 for
# looser ones; before the sender's change 0.908 -> 0.920 with 0.6 / 0.8).
RECEIVER_VOICING = SENDER_VOICING

# The receiver's frame power, de-blurred: the power it measures on the pseudo-voice is the sender's frame power
# spread over the 32 ms window of a second analysis, which fills quiet frames (stop closures, pauses) from their
# loud neighbours. ``deblurred_power`` takes ``a`` of each neighbour's power back out (symmetric, so it needs the
# next frame: one more hop of delay). ``benchmarks/receiver_design.py --part analysis`` (8 corpus voices, offline,
# one run): reconstruction GE2E cosine median 0.902 -> 0.907 (every voice up or equal), PESQ-WB 1.61 -> 1.64,
# WER 30.1 -> 27.9 %; the sender's true power would give 25.3 %. Chosen on the same voices with a /tmp script
# (same frames, one run each): a = 0.15 gave 0.910 and 30.1 %, a causal version (previous frame only, no delay)
# 0.904 / 30.8 % (a = 0.1) and 0.906 / 33.3 % (a = 0.2).
POWER_DEBLUR = 0.1
DEBLUR_FLOOR = 0.1  # never below this share of the measured power


def stage_latency(power_deblur: float = 0.0) -> int:
    """Samples a :class:`VocoderStage` delays its output by: ``DELAY``, one hop more with the power de-blur."""
    return DELAY + (HOP if power_deblur else 0)


def deblurred_power(power: torch.Tensor, prev: torch.Tensor, nxt: torch.Tensor, a: float) -> torch.Tensor:
    """Frame power with ``a`` of each neighbour's taken out: (1 + 2a) p - a (p_prev + p_next), at least
    :data:`DEBLUR_FLOOR` p. A steady contour is unchanged."""
    return torch.maximum((1 + 2 * a) * power - a * (prev + nxt), DEBLUR_FLOOR * power)


def analyze_windows(win: torch.Tensor, voicing: Voicing = SENDER_VOICING) -> Frames:
    """Analyze frames from their 40 ms windows [n, F0_WIN] (the frame centre is sample F0_WIN/2)."""
    x = win.to(torch.float64)
    n = x.shape[0]
    dev = x.device
    # --- YIN
    nfft = 1024
    x1 = x[:, :YIN_W2]
    r = torch.fft.irfft(torch.fft.rfft(x, nfft) * torch.conj(torch.fft.rfft(x1, nfft)), nfft)[:, : TAU_MAX + 1]
    cs = torch.cat([torch.zeros(n, 1, dtype=x.dtype, device=dev), torch.cumsum(x * x, dim=1)], dim=1)
    taus = torch.arange(TAU_MAX + 1, device=dev)
    e_tau = cs[:, taus + YIN_W2] - cs[:, taus]
    d = (e_tau[:, :1] + e_tau - 2.0 * r).clamp(min=0.0)
    cum = torch.cumsum(d[:, 1:], dim=1)
    cmnd = torch.ones_like(d)
    cmnd[:, 1:] = d[:, 1:] * taus[1:] / cum.clamp(min=1e-12)
    seg = cmnd[:, TAU_MIN : TAU_MAX + 1]
    below = seg < 0.15
    has = below.any(dim=1)
    first = torch.argmax(below.to(torch.int64), dim=1)
    glob = torch.argmin(seg, dim=1)
    # from the first dip below threshold, walk to the bottom of that dip (look 20% further)
    idx = torch.arange(seg.shape[1], device=dev)[None, :]
    lim = (first + (first + TAU_MIN) // 5 + 1)[:, None]
    masked = torch.where((idx >= first[:, None]) & (idx <= lim), seg, torch.full_like(seg, 9.0))
    local = torch.argmin(masked, dim=1)
    best = torch.where(has, local, glob)
    tau = (best + TAU_MIN).clamp(TAU_MIN + 1, TAU_MAX - 1)
    a = cmnd.gather(1, (tau - 1)[:, None])[:, 0]
    b = cmnd.gather(1, tau[:, None])[:, 0]
    c = cmnd.gather(1, (tau + 1)[:, None])[:, 0]
    den = a - 2 * b + c
    shift = torch.where(den.abs() > 1e-12, 0.5 * (a - c) / den, torch.zeros_like(den)).clamp(-1, 1)
    f0 = SR / (tau.to(torch.float64) + shift)
    aper = b.clamp(0.0, 1.0)
    # --- power and envelope over the central 32 ms
    mid = F0_WIN // 2
    xe = x[:, mid - ENV_WIN // 2 : mid + ENV_WIN // 2] * _HANN_ENV.to(dev)
    power = (xe * xe).sum(dim=1) / (_HANN_ENV.to(dev) ** 2).sum()
    voiced = (aper < voicing.threshold) & (power > SILENCE_POWER * 10)
    f0 = torch.where(voiced, f0, torch.zeros_like(f0))
    harm = torch.where(voiced, ((voicing.full - aper) / 0.25).clamp(0.0, 1.0), torch.zeros_like(f0))
    spec = torch.fft.rfft(xe, ENV_NFFT).abs() ** 2  # [n, 513]
    bw = SR / ENV_NFFT
    width = torch.where(voiced, f0, torch.full_like(f0, 200.0)) / bw  # bins
    csum = torch.cat([torch.zeros(n, 1, dtype=x.dtype, device=dev), torch.cumsum(spec, dim=1)], dim=1)
    nb = spec.shape[1]
    pos = torch.arange(nb, dtype=x.dtype, device=dev)[None, :] + 0.5
    lo = (pos - width[:, None] / 2).clamp(0, nb)
    hi = (pos + width[:, None] / 2).clamp(0, nb)

    def interp(p: torch.Tensor) -> torch.Tensor:
        i0 = p.floor().long().clamp(0, nb - 1)
        fr = p - i0
        return csum.gather(1, i0) * (1 - fr) + csum.gather(1, (i0 + 1).clamp(max=nb)) * fr

    smooth = (interp(hi) - interp(lo)) / (hi - lo).clamp(min=1e-6)
    melp = smooth @ _FB.to(dev).T
    logmel = torch.log(melp.clamp(min=1e-12))
    mcep = (logmel @ _DCT.to(dev).T)[:, :N_CEP]
    return Frames(f0, harm, power, mcep)


def mel_band_position(freqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where ``freqs`` (Hz) fall between the mel band centres: (lower band index, fraction towards the next).

    The envelope's log value at a frequency is the linear interpolation of the log-mel bands there.
    """
    centres = _MEL_CENTRES.to(freqs.device)
    pos = ((_mel(freqs.clamp(min=0.0)) - centres[0]) / (centres[1] - centres[0])).clamp(0, N_MEL - 1)
    i0 = pos.floor().long().clamp(0, N_MEL - 2)
    return i0, pos - i0


def envelope_at(mcep: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Envelope power at ``freqs`` (Hz) [n, m] from mel-cepstra [n, N_CEP] (relative units)."""
    full = torch.zeros(mcep.shape[0], N_MEL, dtype=mcep.dtype, device=mcep.device)
    full[:, :N_CEP] = mcep
    logmel = full @ _DCT.to(mcep.device)  # inverse of an orthonormal DCT is its transpose
    i0, fr = mel_band_position(freqs.to(mcep.device))
    val = logmel.gather(1, i0) * (1 - fr) + logmel.gather(1, i0 + 1) * fr
    return torch.exp(val - logmel.max(dim=1, keepdim=True).values)


def _harmonic_fraction(harm: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Per-frequency share of the harmonic part: full below 4 kHz, falling to 60% at 8 kHz."""
    tilt = 1.0 - 0.4 * ((freqs - 4000.0) / 4000.0).clamp(0.0, 1.0)
    return harm[:, None] * tilt


def synthesis_params(fr: Frames) -> tuple[torch.Tensor, torch.Tensor]:
    """Harmonic amplitudes [n, K_MAX] and noise filter magnitudes [n, NOISE_WIN//2+1] per frame."""
    dev = fr.f0.device
    k = torch.arange(1, K_MAX + 1, dtype=torch.float64, device=dev)
    hf = fr.f0[:, None] * k[None, :]
    valid = (hf < SR / 2 - 200.0) & (fr.f0[:, None] > 0)
    e_h = envelope_at(fr.mcep, torch.where(valid, hf, torch.zeros_like(hf))) * valid
    w_h = e_h * _harmonic_fraction(fr.harm, hf) * (fr.f0[:, None] / (SR / NOISE_WIN))
    nf = torch.arange(NOISE_WIN // 2 + 1, dtype=torch.float64, device=dev) * SR / NOISE_WIN
    nf_b = nf[None, :].expand(len(fr), -1)
    e_n = envelope_at(fr.mcep, nf_b) * (1.0 - _harmonic_fraction(fr.harm, nf_b))
    p_h = w_h.sum(dim=1)
    p_n = e_n.sum(dim=1)
    tot = (p_h + p_n).clamp(min=1e-12)
    amps = torch.sqrt(2.0 * fr.power[:, None] * w_h / tot[:, None])
    g = torch.sqrt(e_n / e_n.mean(dim=1, keepdim=True).clamp(min=1e-12))
    g = g * torch.sqrt(fr.power * p_n / tot)[:, None]
    return amps, g


Transform = Callable[[Frames], Frames]


class VocoderStage:
    """Streaming analysis -> transform -> synthesis. Chunks: 16 kHz, a multiple of HOP samples.

    Output sample ``i`` of the stream corresponds to input sample ``i - latency_samples`` (``DELAY``, one
    hop more with ``power_deblur``: the receiver's :func:`deblurred_power` waits for the next frame).
    """

    def __init__(self, transform: Transform | None = None, device: str | torch.device = "cpu",
                 keep_frames: bool = False, voicing: Voicing = SENDER_VOICING, power_deblur: float = 0.0) -> None:
        self.transform = transform
        self.voicing = voicing
        self.power_deblur = power_deblur
        self.latency_samples = stage_latency(power_deblur)
        self.latency_s = self.latency_samples / SR
        self.device = torch.device(device)
        self.keep_frames = keep_frames  # keep analyzed frames (for offline analysis; grows without bound)
        self._k = torch.arange(1, K_MAX + 1, dtype=torch.float64, device=self.device)
        self._ramp = torch.arange(HOP, dtype=torch.float64, device=self.device) / HOP
        self.reset()

    def reset(self) -> None:
        """Forget the stream."""
        self._in = torch.zeros(LOOKAHEAD, dtype=torch.float64, device=self.device)  # left context
        self._in_start = -LOOKAHEAD  # absolute input index of self._in[0]
        self._n_in = 0
        self._t = 0  # next frame to analyze
        self._t_syn = 0  # next frame to synthesize
        self._held: Frames | None = None  # with power_deblur: the last analyzed frame, waiting for the next
        self._held_prev = torch.zeros(0, dtype=torch.float64, device=self.device)  # the power before it
        self._prev: tuple[float, torch.Tensor] | None = None  # (f0, amps) of the previous frame
        self._phase = 0.0
        self._noise_tail = torch.zeros(HOP, dtype=torch.float64, device=self.device)
        lead = self.latency_samples - HOP  # synthesis renders frame t's hop ending at its centre
        self._out: list[torch.Tensor] = [torch.zeros(lead, dtype=torch.float64, device=self.device)]
        self.frames_seen: list[Frames] = []

    def _available_frames(self) -> int:
        # frame t (centre t*HOP) needs input up to t*HOP + LOOKAHEAD
        return max(0, (self._n_in - LOOKAHEAD) // HOP + 1)

    def process(self, chunk: AudioChunk) -> AudioChunk:
        """Consume a chunk and return the same number of output samples (delayed by DELAY)."""
        if chunk.sample_rate != SR:
            raise ValueError(f"vocoder runs at {SR} Hz, got {chunk.sample_rate} Hz")
        if len(chunk) % HOP:
            raise ValueError(f"vocoder chunks must be a multiple of {HOP} samples, got {len(chunk)}")
        x = torch.from_numpy(chunk.samples.astype(np.float64)).to(self.device)
        self._in = torch.cat([self._in, x])
        self._n_in += len(x)
        t_end = self._available_frames()
        if t_end > self._t:
            ts = torch.arange(self._t, t_end, device=self.device)
            starts = ts * HOP - LOOKAHEAD - self._in_start
            idx = starts[:, None] + torch.arange(F0_WIN, device=self.device)[None, :]
            frames = analyze_windows(self._in[idx], self.voicing)
            if self.keep_frames:
                self.frames_seen.append(frames)
            if self.power_deblur:
                frames = self._deblur(frames)
            if len(frames):
                if self.transform is not None:
                    frames = self.transform(frames)
                self._synthesize(frames)
            self._t = t_end
            keep_from = self._t * HOP - LOOKAHEAD  # absolute index the next frame's window starts at
            drop = keep_from - self._in_start
            if drop > 0:
                self._in = self._in[drop:]
                self._in_start = keep_from
        out = torch.cat(self._out) if len(self._out) > 1 else self._out[0]
        n = len(chunk)
        y, rest = out[:n], out[n:]
        self._out = [rest]
        return AudioChunk(y.cpu().numpy().astype(np.float32), SR, chunk.timestamp)

    def _deblur(self, fr: Frames) -> Frames:
        """The frames that now have a next frame, with :func:`deblurred_power`; the last one waits."""
        seq = fr if self._held is None else Frames.cat([self._held, fr])
        p = seq.power
        prev = torch.cat([self._held_prev if len(self._held_prev) else p[:1], p[:-2]])
        out = seq.select(slice(0, len(seq) - 1))
        out.power = deblurred_power(p[:-1], prev, p[1:], self.power_deblur)
        self._held = seq.select(slice(len(seq) - 1, None))
        self._held_prev = p[-2:-1] if len(p) > 1 else self._held_prev
        return out

    def _synthesize(self, fr: Frames) -> None:
        amps, g = synthesis_params(fr)
        dev = self.device
        n_fr = len(fr)
        # noise: one Hann-windowed, filtered segment per frame, overlap-added (COLA at hop = win/2)
        pos0 = (torch.arange(self._t_syn, self._t_syn + n_fr, device=dev) * HOP - HOP)
        self._t_syn += n_fr
        nidx = (pos0[:, None] + torch.arange(NOISE_WIN, device=dev)[None, :]) % NOISE_TABLE
        seg = _NOISE.to(dev)[nidx] * _HANN_NOISE.to(dev)
        noise_frames = torch.fft.irfft(torch.fft.rfft(seg, dim=1) * g, NOISE_WIN, dim=1)
        k, ramp = self._k, self._ramp
        outs = []
        for i in range(n_fr):
            f0_t = float(fr.f0[i])
            a_t = amps[i]
            if self._prev is None:
                f0_p, a_p = f0_t, torch.zeros_like(a_t)
            else:
                f0_p, a_p = self._prev
            # unvoiced on one side: hold the voiced side's F0 while its amplitude fades
            f_a = f0_p if f0_p > 0 else f0_t
            f_b = f0_t if f0_t > 0 else f0_p
            f_inst = f_a + (f_b - f_a) * ramp  # [HOP]
            phase = self._phase + torch.cumsum(2 * math.pi * f_inst / SR, dim=0)
            amp = a_p[None, :] + (a_t - a_p)[None, :] * ramp[:, None]  # [HOP, K]
            amp = amp * ((f_inst[:, None] * k[None, :]) < SR / 2 - 100.0)
            harm = (amp * torch.sin(phase[:, None] * k[None, :])).sum(dim=1)
            self._phase = float(phase[-1] % (2 * math.pi))
            self._prev = (f0_t, a_t)
            nz = noise_frames[i]
            block = harm + self._noise_tail + nz[:HOP]
            self._noise_tail = nz[HOP:].clone()
            outs.append(block)
        if outs:
            self._out.append(torch.cat(outs))


def process_offline(x: np.ndarray, transform: Transform | None = None, chunk: int = 2 * HOP,
                    device: str = "cpu", voicing: Voicing = SENDER_VOICING, power_deblur: float = 0.0) -> np.ndarray:
    """Run :class:`VocoderStage` over a whole 16 kHz signal and return it time-aligned with ``x``."""
    x = np.asarray(x, dtype=np.float32)
    n = len(x)
    st = VocoderStage(transform, device, voicing=voicing, power_deblur=power_deblur)
    lat = st.latency_samples
    total = n + lat
    total += (-total) % chunk
    xp = np.zeros(total, dtype=np.float32)
    xp[:n] = x
    out = [st.process(AudioChunk(xp[i : i + chunk], SR)).samples for i in range(0, total, chunk)]
    return np.concatenate(out)[lat : lat + n]


def analyze(x: np.ndarray, device: str = "cpu", voicing: Voicing = SENDER_VOICING) -> Frames:
    """Vocoder parameters of a whole signal (one frame per 10 ms)."""
    st = VocoderStage(None, device, keep_frames=True, voicing=voicing)
    pad = LOOKAHEAD + (-(len(x) + LOOKAHEAD)) % HOP
    st.process(AudioChunk(np.concatenate([np.asarray(x, np.float32), np.zeros(pad, np.float32)]), SR))
    return Frames.cat(st.frames_seen)
