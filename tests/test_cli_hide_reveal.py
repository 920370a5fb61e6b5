import json

import numpy as np
import pytest

from client.cli import main
from csss_core.audio import write_audio
from tests.conftest import voice_clip


@pytest.mark.parametrize("method", ["net", "ss"])
def test_hide_then_reveal_with_the_key_and_not_without(tiny_corpus, tmp_path, capsys, method):
    carrier = tmp_path / "c.wav"
    # the network's ~11 % raw bit errors need several 7.9 s payload copies combined: give it 7
    write_audio(carrier, voice_clip(tiny_corpus, "esp_us_m1", repeat=4 if method == "net" else 2), 16000)
    emb = np.random.default_rng(1).normal(size=186).round(4)
    (tmp_path / "p.json").write_text(json.dumps({"embedding": emb.tolist()}))
    key = tmp_path / "k.key"
    assert main(["keygen", str(key)]) == 0
    out = tmp_path / "h.wav"
    assert main(["hide", str(carrier), str(out), "--payload-file", str(tmp_path / "p.json"), "--key-file", str(key),
                 "--method", method]) == 0
    capsys.readouterr()
    assert main(["reveal", str(out), "--key-file", str(key), "--method", method]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["authenticated"] and np.corrcoef(got["embedding"], emb)[0, 1] > 0.999
    other = tmp_path / "other.key"
    main(["keygen", str(other)])
    capsys.readouterr()
    assert main(["reveal", str(out), "--key-file", str(other), "--method", method]) == 1
    bad = json.loads(capsys.readouterr().out)
    assert bad["embedding"] is None and not bad["authenticated"]


def test_hide_refuses_a_bad_payload_file(tmp_path, capsys):
    write_audio(tmp_path / "c.wav", np.zeros(16000, np.float32) + 0.01, 16000)
    (tmp_path / "p.json").write_text('{"embedding": ["x"]}')
    assert main(["hide", str(tmp_path / "c.wav"), str(tmp_path / "o.wav"), "--payload-file",
                 str(tmp_path / "p.json")]) == 1
    assert "expected JSON with an \"embedding\" list" in capsys.readouterr().err
    assert not (tmp_path / "o.wav").exists()
