"""The paper's steganography networks (section II.B): a U-Net encoder with a graph encoder, and a decoder.

Audio is cut into fixed blocks of ``block`` samples at 16 kHz; each block carries ``bits_per_block``
bits of the payload's repeated bit frame (:func:`csss_core.payload.frame_bits`), so the hidden channel
streams and reuses the sealed payload format (sync word, FEC, AEAD) unchanged.

Encoder (per block)::

    STFT (n_fft, hop, Hann) of the carrier -> [log-magnitude, compressed real, compressed imag]
    bits -> message plane: each bit spread over a fixed pseudo-random set of time-frequency cells with
            pseudo-random signs (public: privacy rests on the payload's AEAD, not on this layout)
    U-Net (2 down modules: two 3x3 conv + BN + LeakyReLU, max-pool; 2 up modules: transpose conv +
           two 3x3 conv) on [carrier features, message plane]
    graph encoder: STFT frames are nodes, adjacency = temporal neighbours + each frame's most similar
           frames (cosine of log spectra), two GCN layers (Kipf & Welling); its node features are
           broadcast over frequency and joined to the U-Net's last feature map
    -> residual STFT (real, imag) -> inverse STFT -> scaled to a fixed level below the block
       (``snr_db`` under the block's RMS, or under ``floor_dbfs`` in silence) -> carrier + residual

Decoder: the same structure on the received block, returning one plane that is despread over each
bit's cells into one logit per bit (positive = 1).

:class:`NetEmbedStage` is the streaming embedder (one block of latency); :class:`NetExtractor` takes
received samples at any time offset: it decodes several block phases until one has clearly the most
confident bits, then follows the best two, each feeding its own :class:`PayloadReceiver`.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from csss_core.audio import INTERNAL_SAMPLE_RATE, AudioChunk
from csss_core.payload import PayloadReceiver, ReceiverState, SpeakerPayload, frame_bits, seal

MODEL_DIR = Path(__file__).resolve().parent.parent / "models"
CARD = "stego_net.json"


@dataclass(frozen=True)
class StegoNetConfig:
    """Hyperparameters of the networks and of the block layout (samples at 16 kHz, dB)."""

    block: int = 1024  # samples per block (64 ms); also the embed stage's latency
    n_fft: int = 256
    hop: int = 128
    bits_per_block: int = 32  # 500 bit/s
    channels: int = 12  # U-Net width at full resolution (doubles at each down module)
    graph: bool = True  # the graph encoder (off = the paper's ablation)
    graph_dim: int = 12
    graph_knn: int = 2  # similarity edges per frame besides the temporal neighbours
    snr_db: float = 32.0  # residual level under the block's RMS
    floor_dbfs: float = -50.0  # block level assumed in silence (so silence still carries bits)
    seed: int = 0x57E6  # seed of the public cell layout

    @property
    def frames(self) -> int:
        """STFT frames per block (centered frames)."""
        return self.block // self.hop + 1

    @property
    def bins(self) -> int:
        """STFT bins per frame."""
        return self.n_fft // 2 + 1

    @property
    def bit_rate(self) -> float:
        """Raw payload bits per second."""
        return self.bits_per_block * INTERNAL_SAMPLE_RATE / self.block


def cell_layout(cfg: StegoNetConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The public spreading layout: bit index [T, F] of each cell and its sign (+/-1) [T, F].

    Cells are dealt to bits round robin in a pseudo-random order, so every bit gets nearly the same
    number of cells spread over the whole block.
    """
    rng = np.random.default_rng(cfg.seed)
    n = cfg.frames * cfg.bins
    owner = np.empty(n, dtype=np.int64)
    owner[rng.permutation(n)] = np.arange(n) % cfg.bits_per_block
    sign = rng.choice([-1.0, 1.0], size=n)
    return (torch.as_tensor(owner.reshape(cfg.frames, cfg.bins)),
            torch.as_tensor(sign.reshape(cfg.frames, cfg.bins), dtype=torch.float32))


def normalized_adjacency(a: torch.Tensor) -> torch.Tensor:
    """Kipf & Welling's propagation matrix D^-1/2 (A + I) D^-1/2 of (batched) adjacency ``a`` [..., N, N]."""
    n = a.shape[-1]
    a_hat = a + torch.eye(n, dtype=a.dtype, device=a.device)
    d = a_hat.sum(dim=-1).clamp_min(1e-12).rsqrt()
    return d.unsqueeze(-1) * a_hat * d.unsqueeze(-2)


def frame_graph(feats: torch.Tensor, knn: int) -> torch.Tensor:
    """Adjacency [B, T, T] between the frames ``feats`` [B, T, D]: temporal neighbours plus, for each
    frame, its ``knn`` most similar other frames (cosine), made symmetric. No self loops (added later).
    """
    b, t, _ = feats.shape
    idx = torch.arange(t, device=feats.device)
    a = ((idx[:, None] - idx[None, :]).abs() == 1).to(feats.dtype).expand(b, t, t).clone()
    if knn > 0 and t > 2:
        f = F.normalize(feats - feats.mean(dim=1, keepdim=True), dim=-1)
        sim = f @ f.transpose(1, 2)
        sim = sim - 2.0 * torch.eye(t, dtype=feats.dtype, device=feats.device)  # never pick itself
        top = sim.topk(min(knn, t - 1), dim=-1).indices
        a.scatter_(2, top, 1.0)
        a = torch.maximum(a, a.transpose(1, 2))
    return a


class GCNLayer(nn.Module):
    """One graph convolution H' = Â H W (Kipf & Welling 2017)."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.lin = nn.Linear(d_in, d_out)

    def forward(self, h: torch.Tensor, a_norm: torch.Tensor) -> torch.Tensor:
        """Node features [B, N, d_in] and normalized adjacency [B, N, N] -> [B, N, d_out]."""
        return a_norm @ self.lin(h)


class GraphEncoder(nn.Module):
    """Two GCN layers over the STFT frames of a block (the paper's Fig. 4)."""

    def __init__(self, bins: int, dim: int, knn: int) -> None:
        super().__init__()
        self.knn = knn
        self.g1 = GCNLayer(bins, dim)
        self.g2 = GCNLayer(dim, dim)

    def forward(self, logmag: torch.Tensor) -> torch.Tensor:
        """Log-magnitude frames [B, T, F] -> node features [B, T, dim]."""
        a = normalized_adjacency(frame_graph(logmag, self.knn))
        h = F.leaky_relu(self.g1(logmag, a), 0.2)
        return self.g2(h, a)


def _conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))


class DownModule(nn.Module):
    """Two 3x3 conv + BN + LeakyReLU, then 2x2 max-pooling; returns (pooled, skip)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(_conv_bn(c_in, c_out), _conv_bn(c_out, c_out))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features [B, C, T, F] (T, F even) -> ([B, C', T/2, F/2], [B, C', T, F])."""
        s = self.convs(x)
        return F.max_pool2d(s, 2), s


class UpModule(nn.Module):
    """Transpose convolution (x2), joined with the skip, then two 3x3 conv + BN + LeakyReLU."""

    def __init__(self, c_in: int, c_skip: int, c_out: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_out, 2, stride=2)
        self.convs = nn.Sequential(_conv_bn(c_out + c_skip, c_out), _conv_bn(c_out, c_out))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Upsample ``x`` to ``skip``'s size and fuse."""
        return self.convs(torch.cat([self.up(x), skip], dim=1))


class UNetGraph(nn.Module):
    """The shared structure of encoder and decoder: U-Net on the STFT plus the optional graph encoder."""

    def __init__(self, c_in: int, c_out: int, cfg: StegoNetConfig) -> None:
        super().__init__()
        c = cfg.channels
        self.down1 = DownModule(c_in, c)
        self.down2 = DownModule(c, 2 * c)
        self.mid = _conv_bn(2 * c, 2 * c)
        self.up1 = UpModule(2 * c, 2 * c, 2 * c)
        self.up2 = UpModule(2 * c, c, c)
        self.graph = GraphEncoder(cfg.bins, cfg.graph_dim, cfg.graph_knn) if cfg.graph else None
        # the head also sees the input planes directly (a linear path: the message plane in the
        # encoder, the received spectrum in the decoder), which lets training start from a plain
        # spread-spectrum embedder/correlator instead of from nothing
        self.head = nn.Conv2d(c + (cfg.graph_dim if cfg.graph else 0) + c_in, c_out, 1)

    def forward(self, x: torch.Tensor, logmag: torch.Tensor) -> torch.Tensor:
        """Planes [B, c_in, T, F] (+ log-magnitude [B, T, F] for the graph) -> [B, c_out, T, F]."""
        t, f = x.shape[-2:]
        pt, pf = (-t) % 4, (-f) % 4
        h = F.pad(x, (0, pf, 0, pt))
        h, s1 = self.down1(h)
        h, s2 = self.down2(h)
        h = self.up2(self.up1(self.mid(h), s2), s1)[..., :t, :f]
        if self.graph is not None:
            g = self.graph(logmag)  # [B, T, G]
            h = torch.cat([h, g.transpose(1, 2).unsqueeze(-1).expand(-1, -1, -1, f)], dim=1)
        return self.head(torch.cat([h, x], dim=1))


class StegoNet(nn.Module):
    """Encoder and decoder networks with their block layout."""

    owner: torch.Tensor
    sign: torch.Tensor
    window: torch.Tensor
    counts: torch.Tensor

    def __init__(self, cfg: StegoNetConfig = StegoNetConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = UNetGraph(4, 2, cfg)
        self.decoder = UNetGraph(3, 1, cfg)
        self.logit_scale = nn.Parameter(torch.tensor(4.0))
        owner, sign = cell_layout(cfg)
        self.register_buffer("owner", owner, persistent=False)
        self.register_buffer("sign", sign, persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)
        counts = torch.bincount(owner.ravel(), minlength=cfg.bits_per_block).to(torch.float32)
        self.register_buffer("counts", counts, persistent=False)

    # --- signal helpers -------------------------------------------------------------------------
    def _stft(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stft(x, self.cfg.n_fft, self.cfg.hop, window=self.window, center=True,
                          return_complex=True).transpose(1, 2)  # [B, T, F]

    def _istft(self, z: torch.Tensor) -> torch.Tensor:
        return torch.istft(z.transpose(1, 2), self.cfg.n_fft, self.cfg.hop, window=self.window, center=True,
                           length=self.cfg.block)

    def _level(self, x: torch.Tensor) -> torch.Tensor:
        rms = x.pow(2).mean(dim=-1, keepdim=True).sqrt()
        return rms.clamp_min(10 ** (self.cfg.floor_dbfs / 20))

    @staticmethod
    def _features(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mag = (z.real.square() + z.imag.square() + 1e-8).sqrt()  # finite gradient at 0
        logmag = torch.log(mag)
        comp = z * mag.pow(-0.7)  # power-law compressed complex spectrum (|comp| = |z| ** 0.3)
        return torch.stack([logmag / 4.0, comp.real, comp.imag], dim=1), logmag

    def message_plane(self, bits: torch.Tensor) -> torch.Tensor:
        """0/1 bits [B, K] -> spread +/-1 plane [B, T, F]."""
        pm = 2.0 * bits.to(torch.float32) - 1.0
        return pm[:, self.owner] * self.sign

    # --- the two networks -----------------------------------------------------------------------
    def residual(self, x: torch.Tensor, bits: torch.Tensor, snr_db: float | None = None) -> torch.Tensor:
        """The hidden residual [B, block] for carrier blocks [B, block] and bits [B, K].

        ``snr_db`` overrides the configured level (training uses louder residuals at first).
        """
        level = self._level(x)
        z = self._stft(x / level)
        feats, logmag = self._features(z)
        planes = torch.cat([feats, self.message_plane(bits).unsqueeze(1)], dim=1)
        out = self.encoder(planes, logmag)
        r = self._istft(torch.complex(out[:, 0], out[:, 1]))
        r_rms = r.pow(2).mean(dim=-1, keepdim=True).add(1e-12).sqrt()
        return r / r_rms * level * 10 ** (-(self.cfg.snr_db if snr_db is None else snr_db) / 20)

    def embed(self, x: torch.Tensor, bits: torch.Tensor, snr_db: float | None = None) -> torch.Tensor:
        """Stego blocks [B, block]: carrier plus residual."""
        return x + self.residual(x, bits, snr_db)

    def extract(self, y: torch.Tensor) -> torch.Tensor:
        """Bit logits [B, K] (positive = 1) of received blocks [B, block]."""
        z = self._stft(y / self._level(y))
        feats, logmag = self._features(z)
        plane = self.decoder(feats, logmag)[:, 0] * self.sign  # [B, T, F]
        sums = torch.zeros(y.shape[0], self.cfg.bits_per_block, dtype=plane.dtype, device=plane.device)
        sums.index_add_(1, self.owner.ravel(), plane.reshape(y.shape[0], -1))
        return self.logit_scale * sums / self.counts

    # --- weights ----------------------------------------------------------------------------------
    def save(self, path: Path) -> str:
        """Write config and weights (float16) to ``path``; returns its sha256."""
        state = {k: v.half() if v.is_floating_point() else v for k, v in self.state_dict().items()}
        buf = io.BytesIO()
        torch.save({"config": asdict(self.cfg), "state": state}, buf)
        path.write_bytes(buf.getvalue())
        return hashlib.sha256(buf.getvalue()).hexdigest()


def load_stego_net(path: Path | None = None, sha256: str | None = None, ablation: bool = False) -> StegoNet:
    """The shipped network (``models/stego_net.pt``) in eval mode, its sha256 checked against its card.

    Args:
        path: another weights file; its hash is checked only when ``sha256`` is given.
        sha256: the expected hash of ``path``.
        ablation: load the shipped variant trained without the graph encoder instead.

    Raises:
        RuntimeError: the file's sha256 does not match.
    """
    if path is None:
        card = json.loads((MODEL_DIR / CARD).read_text())
        if ablation:
            card = card["ablation"]
        path = MODEL_DIR / card["file"]
        sha256 = card["sha256"]
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        raise RuntimeError(f"{path}: sha256 {digest} does not match the expected {sha256}")
    obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    net = StegoNet(StegoNetConfig(**obj["config"]))
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in obj["state"].items()})
    return net.eval()


def _blocks(x: np.ndarray, block: int) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, np.float32).reshape(-1, block))


def _bit_blocks(bits: np.ndarray, start_block: int, n_blocks: int, k: int) -> torch.Tensor:
    idx = (start_block * k + np.arange(n_blocks * k)) % len(bits)
    return torch.as_tensor(bits[idx].reshape(n_blocks, k))


class NetEmbedStage:
    """Streaming embedder: any chunk length in; output delayed by one block (``latency_s``).

    Its output equals :func:`embed_net`'s output delayed by ``block`` samples.
    """

    def __init__(self, bits: np.ndarray, net: StegoNet | None = None) -> None:
        if len(bits) == 0:
            raise ValueError("nothing to embed")
        self.net = load_stego_net() if net is None else net.eval()
        self.bits = np.asarray(bits, dtype=np.uint8)
        self.reset()

    @property
    def latency_s(self) -> float:
        """One block, in seconds."""
        return self.net.cfg.block / INTERNAL_SAMPLE_RATE

    def reset(self) -> None:
        """Start again at the first bit, with one block of silence queued as output."""
        self._in = np.zeros(0, np.float32)
        self._out = np.zeros(self.net.cfg.block, np.float32)
        self._k = 0  # blocks embedded

    def process(self, chunk: AudioChunk) -> AudioChunk:
        """Buffer ``chunk``, embed every complete block, return as many samples as came in."""
        if chunk.sample_rate != INTERNAL_SAMPLE_RATE:
            raise ValueError(f"stego embedding runs at {INTERNAL_SAMPLE_RATE} Hz, got {chunk.sample_rate} Hz")
        n = self.net.cfg.block
        self._in = np.concatenate([self._in, chunk.samples])
        m = len(self._in) // n
        if m:
            y = _embed_blocks(self.net, self._in[: m * n], self.bits, self._k)
            self._k += m
            self._in = self._in[m * n :]
            self._out = np.concatenate([self._out, y])
        out, self._out = self._out[: len(chunk)], self._out[len(chunk) :]
        return AudioChunk(out, chunk.sample_rate, chunk.timestamp)


def _embed_blocks(net: StegoNet, x: np.ndarray, bits: np.ndarray, first_block: int) -> np.ndarray:
    cfg = net.cfg
    xb = _blocks(x, cfg.block)
    with torch.inference_mode():
        y = net.embed(xb, _bit_blocks(bits, first_block, len(xb), cfg.bits_per_block))
    return y.reshape(-1).numpy()


def embed_net(x: np.ndarray, bits: np.ndarray, net: StegoNet | None = None) -> np.ndarray:
    """Embed the repeated ``bits`` into the whole of ``x`` (16 kHz), time-aligned with ``x``."""
    net = load_stego_net() if net is None else net.eval()
    n = net.cfg.block
    xp = np.concatenate([np.asarray(x, np.float32), np.zeros((-len(x)) % n, np.float32)])
    return _embed_blocks(net, xp, np.asarray(bits, np.uint8), 0)[: len(x)]


@dataclass
class _Phase:
    offset: int  # absolute sample index of this phase's next block
    receiver: PayloadReceiver
    confidence: float = 0.0
    blocks: int = 0


@dataclass
class NetExtractor:
    """Streaming extractor for any time offset.

    Block phases ``phase_step`` samples apart are decoded side by side for the first
    ``acquire_blocks`` blocks (longer while no phase stands out); the ``keep`` phases with the most
    confident bits and every offset between them and their neighbours are then decoded for another
    ``acquire_blocks`` blocks (the networks are phase-coherent: a sample off costs bits), and only
    the ``keep`` most confident go on, each with its own :class:`PayloadReceiver`. If none of them
    has found a frame header after ``reacquire_s`` seconds, every phase is tried again. The first
    phase whose payload opens wins.
    """

    key: bytes | None
    net: StegoNet | None = None
    phase_step: int = 4
    acquire_blocks: int = 2
    keep: int = 2
    reacquire_s: float = 10.0
    seconds_to_lock: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.net = load_stego_net() if self.net is None else self.net.eval()
        self.reset()

    def reset(self) -> None:
        """Forget the stream."""
        assert self.net is not None
        n = self.net.cfg.block
        self._buf = np.zeros(0, np.float32)
        self._buf_start = 0
        self._phases = [_Phase(p, PayloadReceiver(self.key)) for p in range(0, n, self.phase_step)]
        self._active = list(range(len(self._phases)))
        self._stage = "coarse"  # coarse phases -> their fine neighbours -> track the best few
        self._acquired_at = 0
        self._winner: int | None = None
        self._seen = 0
        self.seconds_to_lock = None

    @property
    def receiver(self) -> PayloadReceiver:
        """The receiver that locked, else the most advanced active one."""
        if self._winner is not None:
            return self._phases[self._winner].receiver
        best = max(self._active, key=lambda i: (self._phases[i].receiver.state.found,
                                                self._phases[i].receiver.state.copies,
                                                self._phases[i].confidence))
        return self._phases[best].receiver

    def push(self, samples: np.ndarray) -> ReceiverState:
        """Add received 16 kHz samples; returns the state of :attr:`receiver`."""
        assert self.net is not None
        n = self.net.cfg.block
        self._seen += len(samples)
        if self._winner is not None:
            return self.receiver.state
        self._buf = np.concatenate([self._buf, np.asarray(samples, np.float32)])
        # every active phase's complete blocks, decoded in one batch
        jobs, chunks = [], []
        for i in self._active:
            ph = self._phases[i]
            rel = ph.offset - self._buf_start
            m = (len(self._buf) - rel) // n
            if m > 0:
                jobs.append((i, m))
                chunks.append(_blocks(self._buf[rel : rel + m * n], n))
        if not jobs:
            return self.receiver.state
        with torch.inference_mode():
            all_logits = self.net.extract(torch.cat(chunks)).numpy().astype(np.float64)
        pos = 0
        for i, m in jobs:
            ph = self._phases[i]
            logits = all_logits[pos : pos + m]
            pos += m
            ph.offset += m * n
            conf = float(np.mean(np.abs(np.tanh(logits / 2))))
            ph.confidence = (ph.confidence * ph.blocks + conf * m) / (ph.blocks + m)
            ph.blocks += m
            state = ph.receiver.push(np.clip(logits, -12.0, 12.0).ravel())
            if state.opened is not None:
                self._winner = i
                self.seconds_to_lock = ph.offset / INTERNAL_SAMPLE_RATE
                return state
        self._select()
        # while acquiring, keep every sample: phases chosen later replay them (and the first sync word)
        drop = min(self._phases[i].offset for i in self._active) - self._buf_start if self._stage == "track" else 0
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start += drop
        return self.receiver.state

    def _select(self) -> None:
        assert self.net is not None
        n = self.net.cfg.block
        if self._stage == "track":
            if (self._seen - self._acquired_at > self.reacquire_s * INTERNAL_SAMPLE_RATE
                    and not any(self._phases[i].receiver.state.found for i in self._active)):
                # nothing found at the chosen phases: try them all again from here
                base = max(self._phases[i].offset for i in self._active)
                self._phases = [_Phase(base + p, PayloadReceiver(self.key)) for p in range(0, n, self.phase_step)]
                self._active = list(range(len(self._phases)))
                self._stage = "coarse"
            return
        blocks = min(self._phases[i].blocks for i in self._active)
        if blocks < self.acquire_blocks * (4 if self._stage == "fine" else 1):  # few phases: look longer
            return
        conf = np.array([self._phases[i].confidence for i in self._active])
        ranked = [self._active[j] for j in np.argsort(-conf, kind="stable")]
        if self._stage == "coarse":
            # wait (at most 4x longer) until one phase stands out: silence gives no clear winner
            if conf.max() - np.median(conf) < 0.1 and blocks < 4 * self.acquire_blocks:
                return
            # refine: every offset between the best coarse phases' neighbours, decoded side by side
            top = ranked[: self.keep]
            have = {self._phases[i].offset % n for i in top}
            for i in list(top):
                o = self._phases[i].offset
                for d in range(1 - self.phase_step, self.phase_step):
                    if (o + d) % n not in have:
                        have.add((o + d) % n)
                        # a new phase starts at the oldest buffered sample of its phase
                        start = self._buf_start + (o + d - self._buf_start) % n
                        self._phases.append(_Phase(start, PayloadReceiver(self.key)))
                        top.append(len(self._phases) - 1)
            self._active = sorted(top)
            self._stage = "fine"
            return
        self._active = sorted(ranked[: self.keep])
        self._stage = "track"
        self._acquired_at = self._seen


def extract_net(y: np.ndarray, key: bytes | None, net: StegoNet | None = None,
                step: int = 1600) -> NetExtractor:
    """Stream ``y`` (16 kHz) through a :class:`NetExtractor` in ``step``-sample pushes until the
    payload opens or the audio ends; returns the extractor (``.receiver.state``, ``.seconds_to_lock``).
    """
    ex = NetExtractor(key, net)
    for i in range(0, len(y), step):
        if ex.push(y[i : i + step]).opened is not None:
            break
    return ex


def hide(x: np.ndarray, payload: SpeakerPayload, key: bytes | None, net: StegoNet | None = None) -> np.ndarray:
    """Seal ``payload`` (with ``key`` when given) and embed its repeated frame in 16 kHz audio ``x``."""
    return embed_net(x, frame_bits(seal(payload, key)), net)


def reveal(y: np.ndarray, key: bytes | None, net: StegoNet | None = None) -> tuple[ReceiverState, float | None]:
    """Find and open the sealed payload in 16 kHz audio ``y``: (receiver state, seconds of audio read
    until it opened or None).
    """
    ex = extract_net(y, key, net)
    return ex.receiver.state, ex.seconds_to_lock
