import json
import subprocess
import sys

import pytest

from client.cli import main


def test_eval_end_to_end_writes_table_and_report(tiny_corpus, tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(["eval", "--corpus", str(tiny_corpus.root), "--systems", "identity,mcadams",
               "--max-trials", "3", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "EER% ge2e ign" in printed and "mcadams" in printed
    for f in ("report.md", "results.json", "det_ge2e.png", "det_dvector.png", "metrics.png"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    res = {r["name"]: r for r in json.loads((out / "results.json").read_text())["results"]}
    ident, mca = res["identity"], res["mcadams"]
    # the original speech is identified; nothing is private about it
    assert ident["eer"]["ge2e"]["ignorant"] < 0.15
    assert ident["eer"]["dvector"]["ignorant"] < 0.15
    assert ident["snr_db"] == float("inf") and ident["rho_f0"] > 0.99
    assert ident["wer"] < 0.35
    assert ident["pesq"] > 4.0 and ident["stoi"] > 0.99
    # McAdams keeps timing, so intrusive metrics are computed, and it costs quality
    assert mca["pesq"] < ident["pesq"] and mca["stoi"] < ident["stoi"]
    assert mca["rtf"] > 0 and 1 <= ident["dnsmos"]["ovrl"] <= 5
    assert len(list((out / "audio" / "mcadams").glob("*.wav"))) == 12
    assert "| identity |" in (out / "report.md").read_text()


def test_eval_missing_corpus_is_a_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "client.cli", "eval", "--corpus", str(tmp_path / "none")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("csss: error:") and "corpus build" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_system_is_a_one_line_error(tiny_corpus, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "client.cli", "eval", "--corpus", str(tiny_corpus.root),
                           "--systems", "bogus", "--no-wer", "--no-quality", "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "unknown system 'bogus'" in proc.stderr


@pytest.mark.parametrize("argv", [["corpus", "build"], ["eval", "--max-trials", "x"]])
def test_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
