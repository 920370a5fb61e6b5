import numpy as np
import pytest

from csss_core.evaluation.systems import make_system
from csss_core.mcadams import ALPHA_RANGE, draw_alpha, mcadams

from .conftest import speech


def double(x, sr, seed):
    """A py: system used by the test below."""
    return 2 * x


def test_mcadams_keeps_length_and_level_and_changes_spectrum(tiny_corpus):
    x = speech(tiny_corpus, "esp_us_m1", 0)
    y = mcadams(x, 16000, 0.7)
    assert len(y) == len(x)
    assert np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(x**2)), rel=0.05)
    # spectral centroid moves when formant angles are warped
    def centroid(v):
        s = np.abs(np.fft.rfft(v))
        return float(np.sum(s * np.arange(len(s))) / np.sum(s))
    assert abs(centroid(y) - centroid(x)) / centroid(x) > 0.05
    assert np.allclose(mcadams(x, 16000, 0.7), y)


def test_mcadams_alpha_one_is_near_transparent(tiny_corpus):
    x = speech(tiny_corpus, "flite_slt", 0)
    y = mcadams(x, 16000, 1.0)
    n = len(x) - 400
    err = y[200:n] - x[200:n]
    assert 10 * np.log10(np.sum(x[200:n] ** 2) / np.sum(err**2)) > 20


def test_alpha_draw():
    alphas = [draw_alpha(s) for s in range(200)]
    assert min(alphas) >= ALPHA_RANGE[0] and max(alphas) <= ALPHA_RANGE[1]
    assert draw_alpha(5) == draw_alpha(5) and np.std(alphas) > 0.05


def test_system_specs(tone):
    assert np.array_equal(make_system("identity").process(tone, 1), tone)
    cmd = make_system("cmd:cp {in} {out}")
    assert np.max(np.abs(cmd.process(tone, 3) - tone)) < 1e-4
    py = make_system("py:tests.test_systems:double")
    assert np.allclose(py.process(tone, 0), 2 * tone)
    ch = make_system("chimera")
    y = ch.process(tone, 7)
    assert y.ndim == 1 and len(y) > 0 and np.all(np.isfinite(y))
    with pytest.raises(ValueError, match="known: identity, mcadams, chimera, csss"):
        make_system("nope")
    with pytest.raises(ValueError):
        make_system("cmd:echo {in}")
    with pytest.raises(RuntimeError, match="command failed"):
        make_system("cmd:false {in} {out}").process(tone, 0)
