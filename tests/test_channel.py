import numpy as np
import pytest

from csss_core.channel import opus_roundtrip

from .conftest import speech


def _best_corr(x, y, max_lag=40):
    best = -1.0
    for d in range(-max_lag, max_lag + 1):
        a, b = (x[d:], y[: len(y) - d]) if d >= 0 else (x[:d], y[-d:])
        best = max(best, float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
    return best


@pytest.mark.parametrize("bitrate", [96_000, 32_000])
def test_opus_roundtrip_keeps_length_timing_and_speech(tiny_corpus, bitrate):
    x = speech(tiny_corpus, "flite_slt", 0)
    y = opus_roundtrip(x, bitrate=bitrate)
    assert len(y) == len(x)
    assert _best_corr(x, y) > 0.9  # same waveform within a few samples of the input's timing
    assert not np.allclose(x, y, atol=1e-3)  # it really went through a lossy codec


def test_opus_packet_loss_drops_frames():
    rng = np.random.default_rng(0)
    x = (0.2 * rng.normal(size=32000)).astype(np.float32)
    clean = opus_roundtrip(x, loss=0.0)
    lossy = opus_roundtrip(x, loss=0.2, seed=3)
    win = 160  # 10 ms: every dropped 20 ms packet leaves at least one silent 10 ms window

    def silent(y):
        return [float(np.max(np.abs(y[i : i + win]))) < 1e-3 for i in range(win, len(y) - win, win)]

    assert 0.08 < np.mean(silent(lossy)) < 0.35
    assert not any(silent(clean))
    with pytest.raises(ValueError):
        opus_roundtrip(x, loss=1.0)
