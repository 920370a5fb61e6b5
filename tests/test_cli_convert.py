import json
import subprocess
import sys

import numpy as np
import soundfile as sf

from csss_core.audio import read_audio
from csss_core.speaker import load_codebook


def _run(*args):
    return subprocess.run([sys.executable, "-m", "client.cli", *args], capture_output=True, text=True, timeout=300)


def test_anonymize_and_embed_speaker(tiny_corpus, tmp_path):
    src = tiny_corpus.root / tiny_corpus.split("trial")[0].path
    out = tmp_path / "anon.flac"
    p = _run("anonymize", str(src), str(out), "--seed", "4")
    assert p.returncode == 0, p.stderr
    assert "pseudo-voice of seed 4" in p.stdout
    y, sr = read_audio(out)
    x, _ = read_audio(src)
    assert sr == 16000 and abs(len(y) - len(x)) <= 1 and not np.allclose(y, x, atol=1e-2)
    e = _run("embed-speaker", str(src))
    assert e.returncode == 0, e.stderr
    emb = json.loads(e.stdout)["embedding"]
    assert len(emb) == load_codebook().dim and all(np.isfinite(emb))


def test_bad_input_gives_one_line_errors(tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000), 16000)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"nope" * 100)
    out = str(tmp_path / "o.wav")
    cases = (["anonymize", str(silent), out], ["embed-speaker", str(silent)],
             ["anonymize", str(garbage), out], ["embed-speaker", str(tmp_path / "missing.wav")])
    for args in cases:
        p = _run(*args)
        assert p.returncode == 1, args
        assert p.stderr.strip().startswith("csss: error:") and "Traceback" not in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.wav").exists()
    p = _run("anonymize", str(silent), out, "--seed", "-1")
    assert p.returncode == 1 and "--seed" in p.stderr
    p = _run("anonymize", str(silent), out, "--beta", "0")
    assert p.returncode == 1 and "--beta" in p.stderr
