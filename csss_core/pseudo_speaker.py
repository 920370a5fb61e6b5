"""Pseudo-speakers: a WGAN-GP generator over the speaker-embedding space (Meyer et al. 2023).

The generator maps 32-d Gaussian noise to a (standardized) speaker embedding. Sampling is seeded
(one seed per call; the same seed gives the same voice) and redraws a sample until it is

- inside the human range: log-F0 mean within 75-300 Hz and a Mahalanobis distance to the training
  voices no larger than the training set's own 99th percentile, and
- far from the real speaker: distance check supplied by the caller (for example cosine distance at
  least 0.3 between ASV embeddings of the real voice and of a short rendering in the pseudo-voice).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from csss_core.speaker import MODEL_DIR

NOISE_DIM = 32


class Generator(nn.Module):
    """Noise [n, 32] -> standardized embedding [n, dim]."""

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(NOISE_DIM, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Generate."""
        return self.net(z)


class Critic(nn.Module):
    """Embedding -> Wasserstein critic score."""

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score."""
        return self.net(x)


@dataclass
class PseudoSpeakerModel:
    """A trained generator with the statistics needed to sample and to check the human range."""

    generator: Generator
    mean: np.ndarray  # per-dimension mean of the training embeddings
    std: np.ndarray
    cov_inv: np.ndarray  # of standardized training embeddings (regularized)
    maha_limit: float  # 99th percentile of the training voices' Mahalanobis distances

    @property
    def dim(self) -> int:
        """Embedding length."""
        return int(self.mean.shape[0])

    def mahalanobis(self, v: np.ndarray) -> float:
        """Distance of an embedding from the training voices."""
        z = (np.asarray(v, np.float64) - self.mean) / self.std
        return float(np.sqrt(z @ self.cov_inv @ z))

    def generate(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        """Raw generator samples [n, dim] (no checks)."""
        z = torch.from_numpy(rng.standard_normal((n, NOISE_DIM)).astype(np.float32))
        with torch.no_grad():
            y = self.generator(z).double().numpy()
        return y * self.std + self.mean

    def in_human_range(self, v: np.ndarray) -> bool:
        """Plausible F0 and close enough to the training distribution."""
        f0 = float(np.exp(v[0]))
        return 75.0 <= f0 <= 300.0 and 0.01 < v[1] < 0.6 and self.mahalanobis(v) <= self.maha_limit

    def draw(self, seed: int, index: int) -> np.ndarray:
        """The ``index``-th raw draw of ``seed`` (what :meth:`sample` considered at that step)."""
        rng = np.random.default_rng(seed)
        v = self.generate(rng)[0]
        for _ in range(index):
            v = self.generate(rng)[0]
        return v.astype(np.float32)

    def candidates(self, seed: int, max_draws: int = 64) -> Iterator[tuple[int, np.ndarray]]:
        """(draw index, embedding) of the draws of ``seed`` that are inside the human range."""
        rng = np.random.default_rng(seed)
        for i in range(max_draws):
            v = self.generate(rng)[0]
            if self.in_human_range(v):
                yield i, v.astype(np.float32)

    def sample(self, seed: int, far_enough: Callable[[np.ndarray], bool] | None = None,
               max_draws: int = 64) -> tuple[np.ndarray, int]:
        """The pseudo-speaker of ``seed`` and how many draws were rejected before it.

        Raises:
            RuntimeError: no acceptable sample in ``max_draws`` draws.
        """
        for i, v in self.candidates(seed, max_draws):
            if far_enough is not None and not far_enough(v):
                continue
            return v, i
        raise RuntimeError(f"no acceptable pseudo-speaker in {max_draws} draws")

    def save(self, path: Path) -> str:
        """Write weights and statistics; return the file's sha256."""
        torch.save({"state": self.generator.state_dict(), "mean": self.mean, "std": self.std,
                    "cov_inv": self.cov_inv, "maha_limit": self.maha_limit}, path)
        return hashlib.sha256(path.read_bytes()).hexdigest()


def load_pseudo_speaker_model(path: Path | None = None) -> PseudoSpeakerModel:
    """Load the shipped generator, checking the sha256 recorded in its model card."""
    if path is None:
        card = json.loads((MODEL_DIR / "pseudo_gan.json").read_text())
        path = MODEL_DIR / card["file"]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != card["sha256"]:
            raise RuntimeError(f"{path}: sha256 {digest} does not match its model card")
    blob = torch.load(path, map_location="cpu", weights_only=False)
    g = Generator(int(blob["mean"].shape[0]))
    g.load_state_dict(blob["state"])
    g.eval()
    return PseudoSpeakerModel(g, blob["mean"], blob["std"], blob["cov_inv"], float(blob["maha_limit"]))


def train_wgan_gp(data: np.ndarray, steps: int = 3000, seed: int = 0, lr: float = 1e-4,
                  gp_weight: float = 10.0, n_critic: int = 5) -> tuple[PseudoSpeakerModel, list[float]]:
    """Train a WGAN-GP on speaker embeddings [n, dim]; returns the model and the critic-loss curve."""
    torch.manual_seed(seed)
    mean = data.mean(axis=0)
    std = data.std(axis=0) + 1e-6
    x = torch.from_numpy(((data - mean) / std).astype(np.float32))
    dim = x.shape[1]
    g, c = Generator(dim), Critic(dim)
    og = torch.optim.Adam(g.parameters(), lr=lr, betas=(0.5, 0.9))
    oc = torch.optim.Adam(c.parameters(), lr=lr, betas=(0.5, 0.9))
    bs = min(64, len(x))
    curve: list[float] = []
    for step in range(steps):
        for _ in range(n_critic):
            real = x[torch.randint(len(x), (bs,))]
            fake = g(torch.randn(bs, NOISE_DIM)).detach()
            eps = torch.rand(bs, 1)
            mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
            grad = torch.autograd.grad(c(mix).sum(), mix, create_graph=True)[0]
            gp = ((grad.norm(dim=1) - 1) ** 2).mean()
            loss_c = c(fake).mean() - c(real).mean() + gp_weight * gp
            oc.zero_grad()
            loss_c.backward()
            oc.step()
        loss_g = -c(g(torch.randn(bs, NOISE_DIM))).mean()
        og.zero_grad()
        loss_g.backward()
        og.step()
        if step % 50 == 0:
            curve.append(float(loss_c.detach()))
    g.eval()
    z = (data - mean) / std
    cov = np.cov(z.T) + 0.1 * np.eye(dim)
    cov_inv = np.linalg.inv(cov)
    d = np.sqrt(np.einsum("ni,ij,nj->n", z, cov_inv, z))
    return PseudoSpeakerModel(g, mean, std, cov_inv, float(np.percentile(d, 99) * 1.2)), curve


def plot_samples(model: PseudoSpeakerModel, real: np.ndarray, path: Path, n: int = 500, seed: int = 0) -> None:
    """2-D PCA projection of real (training) vs generated embeddings, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gen = model.generate(np.random.default_rng(seed), n)
    ok = np.array([model.in_human_range(v) for v in gen])
    zr = (real - model.mean) / model.std
    zg = (gen - model.mean) / model.std
    mu = zr.mean(axis=0)
    _, _, vt = np.linalg.svd(zr - mu, full_matrices=False)
    pr, pg = (zr - mu) @ vt[:2].T, (zg - mu) @ vt[:2].T
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(pg[ok, 0], pg[ok, 1], s=6, alpha=0.5, label=f"generated, accepted ({ok.mean():.0%})")
    ax.scatter(pg[~ok, 0], pg[~ok, 1], s=6, alpha=0.5, marker="x", label="generated, outside human range")
    ax.scatter(pr[:, 0], pr[:, 1], s=14, c="k", label=f"training voices ({len(real)})")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title("Speaker embeddings: real vs GAN (PCA of real)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
