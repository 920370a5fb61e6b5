"""The speaker embedding the converter renders a voice from (and that travels hidden).

Layout of the vector (float32, ``2 + K * D`` values, D = N_CEP - 1 envelope coefficients without
the level term c0)::

    [log-F0 mean, log-F0 std, class-1 envelope mean (D), ..., class-K envelope mean (D)]

The K acoustic classes are speaker-independent: a universal codebook (shipped in ``models/``) of
centroids of speaker-normalized envelopes, so the same sound falls in the same class whoever says
it. A speaker's class means are estimated by MAP adaptation from the universal prior, so a few
seconds of speech give a usable vector that keeps improving as more speech arrives.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from csss_core.vocoder import N_CEP, Frames

D = N_CEP - 1
SPEECH_POWER = 10 ** (-50 / 10)  # frames quieter than -50 dBFS are not used for estimation
MODEL_DIR = Path(__file__).resolve().parent.parent / "models"


@dataclass(frozen=True)
class Codebook:
    """Universal acoustic classes: centroids [K, D] in speaker-normalized envelope space, priors [K]."""

    centroids: np.ndarray
    priors: np.ndarray
    temperature: float

    @property
    def k(self) -> int:
        """Number of classes."""
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        """Length of a speaker embedding."""
        return 2 + self.k * D

    def posteriors(self, norm_env: torch.Tensor) -> torch.Tensor:
        """Soft class memberships [n, K] of speaker-normalized envelopes [n, D]."""
        c = torch.as_tensor(self.centroids, dtype=norm_env.dtype, device=norm_env.device)
        d2 = ((norm_env[:, None, :] - c[None, :, :]) ** 2).sum(dim=2)
        logp = -d2 / self.temperature + torch.log(torch.as_tensor(self.priors, dtype=norm_env.dtype,
                                                                  device=norm_env.device))
        return torch.softmax(logp, dim=1)

    def save(self, path: Path) -> str:
        """Write the codebook as .npz and return its sha256."""
        np.savez(path, centroids=self.centroids, priors=self.priors, temperature=np.array(self.temperature))
        return hashlib.sha256(path.read_bytes()).hexdigest()


def load_codebook(path: Path | None = None) -> Codebook:
    """Load the shipped codebook, checking the sha256 in its model card."""
    card_path = MODEL_DIR / "codebook.json"
    if path is None:
        card = json.loads(card_path.read_text())
        path = MODEL_DIR / card["file"]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != card["sha256"]:
            raise RuntimeError(f"{path}: sha256 {digest} does not match its model card")
    with np.load(path) as z:
        return Codebook(z["centroids"].astype(np.float64), z["priors"].astype(np.float64), float(z["temperature"]))


@dataclass(frozen=True)
class SpeakerEmbedding:
    """A decoded speaker embedding."""

    logf0_mean: float
    logf0_std: float
    class_means: np.ndarray  # [K, D]

    def to_vector(self) -> np.ndarray:
        """The flat float32 vector (what travels)."""
        return np.concatenate([[self.logf0_mean, self.logf0_std], self.class_means.ravel()]).astype(np.float32)

    @classmethod
    def from_vector(cls, v: np.ndarray, k: int) -> SpeakerEmbedding:
        """Parse a flat vector for a codebook with ``k`` classes."""
        v = np.asarray(v, dtype=np.float64).ravel()
        if v.size != 2 + k * D:
            raise ValueError(f"speaker embedding must have {2 + k * D} values, got {v.size}")
        if not np.all(np.isfinite(v)):
            raise ValueError("speaker embedding has non-finite values")
        return cls(float(v[0]), float(max(v[1], 0.01)), v[2:].reshape(k, D))

    def global_mean(self, priors: np.ndarray) -> np.ndarray:
        """Prior-weighted mean envelope [D]."""
        return (priors[:, None] * self.class_means).sum(axis=0) / priors.sum()


class SpeakerEstimator:
    """Running estimate of a speaker's embedding from vocoder frames (refines as speech arrives)."""

    def __init__(self, codebook: Codebook, relevance: float = 8.0) -> None:
        self.cb = codebook
        self.relevance = relevance
        self.reset()

    def reset(self) -> None:
        """Forget all frames."""
        self._env: list[np.ndarray] = []
        self._lf0: list[np.ndarray] = []

    def update(self, frames: Frames) -> None:
        """Add frames (only speech frames count)."""
        speech = frames.power > SPEECH_POWER
        if bool(speech.any()):
            self._env.append(frames.mcep[speech][:, 1:].cpu().numpy())
        voiced = frames.f0 > 0
        if bool(voiced.any()):
            self._lf0.append(torch.log(frames.f0[voiced]).cpu().numpy())

    @property
    def n_frames(self) -> int:
        """Speech frames seen."""
        return int(sum(len(e) for e in self._env))

    def estimate(self) -> SpeakerEmbedding:
        """The current embedding; raises ``ValueError`` before any speech was seen."""
        if not self._env or not self._lf0:
            raise ValueError("no speech found to estimate a speaker from")
        env = np.concatenate(self._env)
        lf0 = np.concatenate(self._lf0)
        gmean = env.mean(axis=0)
        post = self.cb.posteriors(torch.from_numpy(env - gmean)).numpy()  # [n, K]
        counts = post.sum(axis=0)
        prior_means = gmean[None, :] + self.cb.centroids
        means = (post.T @ env + self.relevance * prior_means) / (counts + self.relevance)[:, None]
        std = float(np.std(lf0)) if len(lf0) > 1 else 0.15
        return SpeakerEmbedding(float(np.mean(lf0)), max(std, 0.02), means)
