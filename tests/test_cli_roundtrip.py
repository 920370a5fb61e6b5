import json

from client.cli import main
from csss_core.audio import read_audio, write_audio
from tests.conftest import voice_clip


def test_roundtrip_writes_three_signals_and_figures(tiny_corpus, tmp_path, capsys):
    x = voice_clip(tiny_corpus, "flite_awb", repeat=1)
    assert len(x) > 12 * 16000
    src = tmp_path / "in.wav"
    write_audio(src, x, 16000)
    rc = main(["roundtrip", str(src), str(tmp_path / "out"), "--seed", "5", "--no-quality"])
    fig = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and fig["authenticated"] == "True"
    assert 2.5 < fig["seconds_to_lock"] < 6.0  # one payload frame lasts 2.86 s at 1000 bit/s
    assert fig["ge2e_cos_original_vs_reconstructed_after_lock"] > fig["ge2e_cos_original_vs_anonymized_after_lock"]
    assert 0.0 <= fig["delay_ms"] < 300
    for name in ("anonymized", "channel", "reconstructed"):
        y, sr = read_audio(tmp_path / "out" / f"{name}.wav", sample_rate=None)
        assert sr == 16000 and len(y) == len(x)


def test_roundtrip_too_short_to_lock_fails_with_a_reason(tiny_corpus, tmp_path, capsys):
    src = tmp_path / "short.wav"
    write_audio(src, voice_clip(tiny_corpus, "flite_awb", repeat=1)[: 3 * 8000], 16000)
    rc = main(["roundtrip", str(src), str(tmp_path / "o"), "--no-quality", "--seed", "1"])
    fig = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 1 and fig["seconds_to_lock"] is None and "payload" in fig["reason"]


def test_recon_system_reconstructs_one_utterance(tiny_corpus):
    from csss_core.evaluation.systems import make_system
    from tests.conftest import speech

    sys_ = make_system("csss-recon")
    x = speech(tiny_corpus, "esp_us_m1", 2)
    y = sys_.process(x, seed=3)
    assert len(y) == len(x)
    rep = sys_.report(None)
    assert rep["trials"] == 1
    assert rep["fraction of trials whose identity locked before the evaluated repetition"] == 1.0
    from csss_core.evaluation.attackers import GE2EAttacker

    g = GE2EAttacker()
    e = g.embed(x)
    assert float(e @ g.embed(y)) > 0.6
