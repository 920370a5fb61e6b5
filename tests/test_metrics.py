import numpy as np
import pytest

from csss_core.evaluation import metrics


def test_eer_perfect_separation_is_zero():
    r = metrics.compute_eer(np.array([0.9, 0.8, 0.7]), np.array([0.1, 0.2, 0.3, 0.5]))
    assert r.eer == 0.0
    assert 0.5 < r.threshold <= 0.7


def test_eer_identical_distributions_is_half():
    rng = np.random.default_rng(1)
    r = metrics.compute_eer(rng.normal(size=20000), rng.normal(size=20000))
    assert abs(r.eer - 0.5) < 0.02


def test_eer_reversed_scores_is_one():
    r = metrics.compute_eer(np.array([0.0, 0.1]), np.array([0.8, 0.9]))
    assert r.eer == 1.0


def test_eer_matches_gaussian_theory():
    # two unit Gaussians one standard deviation apart: EER = Phi(-0.5) = 0.3085
    rng = np.random.default_rng(2)
    r = metrics.compute_eer(rng.normal(1.0, 1.0, 40000), rng.normal(0.0, 1.0, 40000))
    assert abs(r.eer - 0.3085) < 0.01


def test_eer_rejects_empty_and_nan():
    with pytest.raises(ValueError):
        metrics.compute_eer(np.array([]), np.array([1.0]))
    with pytest.raises(ValueError):
        metrics.compute_eer(np.array([np.nan]), np.array([1.0]))


def test_wer_on_known_pairs():
    assert metrics.word_errors("The cat sat on the mat.", "the cat sat on mat") == (1, 6)
    assert metrics.word_errors("Glue the sheet", "glue a sheet now") == (2, 3)
    assert metrics.corpus_wer([("a b c d", "a b c d"), ("a b c d", "a x c")]) == pytest.approx(2 / 8)
    assert metrics.word_errors("fifty bonds", "50 bonds") == (0, 2)
    assert metrics.word_errors("one two", "") == (2, 2)


def test_snr_known_value():
    rng = np.random.default_rng(3)
    x = rng.normal(size=160000)
    noise = rng.normal(size=x.size) * 10 ** (-20 / 20)
    assert metrics.snr_db(x, x + noise) == pytest.approx(20.0, abs=0.2)
    assert metrics.snr_db(x, x) == float("inf")


def test_rho_f0_follows_pitch_contour():
    sr = 16000
    t = np.arange(2 * sr) / sr
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    ph = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * ph) / k for k in range(1, 8)).astype(np.float32) * 0.2
    ph2 = 2 * np.pi * np.cumsum(1.3 * f0) / sr  # same contour, scaled
    y = sum(np.sin(k * ph2) / k for k in range(1, 8)).astype(np.float32) * 0.2
    flat = sum(np.sin(k * 2 * np.pi * 150 * t) / k for k in range(1, 8)).astype(np.float32) * 0.2
    flat = flat + 0.01 * np.random.default_rng(0).normal(size=flat.size).astype(np.float32)
    assert metrics.rho_f0(x, x) > 0.99
    assert metrics.rho_f0(x, y) > 0.9
    assert abs(metrics.rho_f0(x, flat)) < 0.5


def test_pesq_and_stoi_rank_degradation():
    from csss_core.audio import read_audio  # noqa: F401  (import check only)

    rng = np.random.default_rng(4)
    sr = 16000
    t = np.arange(3 * sr) / sr
    env = (np.sin(2 * np.pi * 3 * t) > 0).astype(float)
    x = (env * np.sin(2 * np.pi * 300 * t) * 0.3).astype(np.float32)
    mild = x + 0.003 * rng.normal(size=x.size).astype(np.float32)
    harsh = x + 0.1 * rng.normal(size=x.size).astype(np.float32)
    assert metrics.stoi(x, mild) > metrics.stoi(x, harsh)
    p_mild, p_harsh = metrics.pesq_wb(x, mild), metrics.pesq_wb(x, harsh)
    assert p_mild > p_harsh


def test_aligned():
    assert metrics.aligned(np.zeros(1000), np.zeros(1005))
    assert not metrics.aligned(np.zeros(1000), np.zeros(1200))


def test_quality_models_take_audio_that_overshoots_full_scale():
    """A system's output may exceed [-1, 1] (speechmos refuses it); it is scored as a sound card would play it."""
    from csss_core.evaluation.quality import dnsmos, plcmos

    t = np.arange(3 * 16000) / 16000
    loud = (1.4 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    clipped = np.clip(loud, -1, 1)
    assert 1.0 <= plcmos(loud) <= 5.0  # PLCMOS itself varies from call to call (speechmos), so no equality here
    assert dnsmos(loud)["ovrl"] == dnsmos(clipped)["ovrl"]
