"""The identity converter: ``convert(chunk, source, target)`` on vocoder parameters.

Per frame: the envelope's class-conditional structure is replaced (each acoustic class's source
mean swapped for the target's, weighted by the frame's class posteriors; ``beta`` < 1 also shrinks
what remains of the source within its class), log-F0 is mapped from the source's mean/std to the
target's, and random per-call pitch and energy offsets are applied (the paper's prosody offsets).
The words, the F0 contour's shape, the energy contour and the timing are kept.

Anonymize = convert(x, source=embed(x), target=pseudo); reconstruct = convert(y, source=pseudo,
target=real) with the offsets inverted. The receiver first undoes the blur one synthesis and analysis
pass puts on the envelope it measures (:func:`receiver_lifter`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch

from csss_core.audio import AudioChunk
from csss_core.speaker import Codebook, SpeakerEmbedding
from csss_core.vocoder import N_CEP, SENDER_VOICING, Frames, VocoderStage, Voicing, process_offline


@dataclass(frozen=True)
class Offsets:
    """Per-call prosody offsets: F0 and energy multipliers."""

    pitch: float = 1.0
    energy: float = 1.0

    def inverse(self) -> Offsets:
        """The offsets that undo these."""
        return Offsets(1.0 / self.pitch, 1.0 / self.energy)

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Offsets:
        """Random offsets: pitch x [0.92, 1.08], energy x [0.8, 1.25]."""
        return cls(float(np.exp(rng.uniform(-0.08, 0.08))), float(np.exp(rng.uniform(-0.22, 0.22))))


@cache
def receiver_lifter() -> np.ndarray:
    """Per-coefficient gains [N_CEP] that undo the envelope blur of one vocoder pass.

    Made by ``models/fit_receiver_lifter.py`` (copy synthesis of pool voices): the mel-cepstrum the
    receiver measures on the sender's synthesized pseudo-voice has its higher coefficients shrunk
    (to 0.35-0.86 of what was synthesized); multiplying by these gains restores them.
    """
    spec = json.loads((Path(__file__).parent / "data" / "receiver_lifter.json").read_text())
    lift = np.asarray(spec["lifter"], dtype=np.float64)
    if lift.shape != (N_CEP,) or not np.all(np.isfinite(lift)) or lift.min() < 1.0:
        raise RuntimeError("csss_core/data/receiver_lifter.json is damaged")
    return lift


class FrameMapper:
    """The frame transform that converts ``source`` into ``target``.

    ``lifter`` (the receiver's): per-coefficient gains applied to the measured mel-cepstrum first.
    ``undo``: this mapper is the inverse of a sender's (``source`` = its target, ``offsets`` = its
    offsets' inverse): the pitch offset is then taken off *before* log-F0 is mapped back, so the pair is
    exact (the sender adds it after its mapping; applying it after the inverse mapping too would leave
    a residual F0 factor of ``sender_pitch ** (target_std / source_std - 1)``, this mapper's log-F0 spreads).
    """

    def __init__(self, codebook: Codebook, source: SpeakerEmbedding, target: SpeakerEmbedding,
                 offsets: Offsets = Offsets(), beta: float | np.ndarray = 1.0,
                 harmonicity: float | None = None, lifter: np.ndarray | None = None, undo: bool = False) -> None:
        self.cb = codebook
        self.src = source
        self.tgt = target
        self.off = offsets
        self.undo = undo
        dim = source.class_means.shape[1]
        self.beta = torch.as_tensor(np.broadcast_to(np.asarray(beta, dtype=np.float64), (dim,)).copy())
        self.harmonicity = harmonicity
        self._src_mean = torch.from_numpy(source.global_mean(codebook.priors))
        self._src_cls = torch.from_numpy(source.class_means)
        self._tgt_cls = torch.from_numpy(target.class_means)
        self._lift = None if lifter is None else torch.as_tensor(np.asarray(lifter, np.float64)[1:])

    def __call__(self, fr: Frames) -> Frames:
        """Map frames."""
        env = fr.mcep[:, 1:]
        dev = env.device
        if self._lift is not None:
            env = env * self._lift.to(dev)
        post = self.cb.posteriors(env - self._src_mean.to(dev))
        src_fit = post @ self._src_cls.to(dev)
        tgt_fit = post @ self._tgt_cls.to(dev)
        new_env = tgt_fit + self.beta.to(dev) * (env - src_fit)
        mcep = torch.cat([fr.mcep[:, :1], new_env], dim=1)
        voiced = fr.f0 > 0
        lf0 = torch.log(torch.where(voiced, fr.f0, torch.ones_like(fr.f0)))
        shift = math.log(self.off.pitch)
        if self.undo:
            lf0, shift = lf0 + shift, 0.0
        z = (lf0 - self.src.logf0_mean) / self.src.logf0_std
        new_lf0 = z * self.tgt.logf0_std + self.tgt.logf0_mean + shift
        f0 = torch.where(voiced, torch.exp(new_lf0).clamp(50.0, 600.0), torch.zeros_like(fr.f0))
        harm = fr.harm if self.harmonicity is None else torch.where(voiced, torch.full_like(fr.harm, self.harmonicity),
                                                                     torch.zeros_like(fr.harm))
        return Frames(f0, harm, fr.power * self.off.energy, mcep)


class ConverterStage:
    """Streaming converter: a vocoder stage with the frame mapper as its transform (20 ms latency)."""

    def __init__(self, mapper: FrameMapper, device: str = "cpu") -> None:
        self.mapper = mapper
        self._voc = VocoderStage(mapper, device)

    @property
    def latency_s(self) -> float:
        """Algorithmic delay in seconds."""
        return self._voc.latency_s

    def process(self, chunk: AudioChunk) -> AudioChunk:
        """Convert one chunk."""
        return self._voc.process(chunk)

    def reset(self) -> None:
        """Forget the stream."""
        self._voc.reset()


def convert(x: np.ndarray, mapper: FrameMapper, device: str = "cpu", voicing: Voicing = SENDER_VOICING,
            power_deblur: float = 0.0) -> np.ndarray:
    """Convert a whole 16 kHz signal (same result as streaming, time-aligned with ``x``)."""
    return process_offline(x, mapper, device=device, voicing=voicing, power_deblur=power_deblur)
