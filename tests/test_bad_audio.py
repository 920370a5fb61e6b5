"""Bad audio through every ``csss`` command that reads audio (issue 8, "Hardening": bad audio).

Commands: anonymize, embed-speaker, extract, reconstruct, reveal (ss and net), hide (net and ss),
roundtrip, call (``--input-file`` and ``--enroll``) and eval (a corpus with one bad file). ``keygen``,
``corpus build`` and ``demo`` read no audio file. Files: broken ones (0 bytes, a header without samples,
text named .wav, a cut header, NaN/inf samples, a folder, a missing path, 4 h 1 min, a 1 kHz rate),
odd content (silence, a full-scale square wave, white noise, a chord, 5 ms, a WAV cut mid-data,
hard-clipped speech) and valid formats that must work (8 / 44.1 kHz, stereo, 24-bit, float, FLAC,
Ogg Vorbis, MP3).

Every (command, file) pair must either work (exit 0 and a valid output) or fail with exit 1, one
``csss: error:`` line on stderr that names the problem, no traceback, and no output left behind.

The CLI runs in subprocesses. To keep the suite to a few minutes, one subprocess runs all files of one
command: this module's ``__main__`` calls ``client.cli.main`` (what the ``csss`` script calls) once per
file, capturing stdout and stderr per call; an exception escaping ``main`` is printed as the
interpreter would (a traceback, exit 1), so every pair still has its own exit code, output and
assertion. ``test_real_process_*`` run one process per call for a few pairs, as ``csss`` does.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SR = 16_000
EMB_DIM = 186

# ---------------------------------------------------------------- the files

# broken files: every command must refuse them with this message (a regex)
BROKEN = {
    "empty0": r"empty file \(0 bytes\)",
    "header_only": r"no samples \(empty audio\)",
    "text": r"not a readable audio file",
    "cut_header": r"not a readable audio file",
    "nan": r"NaN or infinite",
    "inf": r"NaN or infinite",
    "folder": r"is a directory",
    "missing": r"no such file",
    "too_long": r"14460 s is longer than the 14400 s limit",
    "rate_1k": r"sample rate 1000 Hz",
}
# odd content; what each command must do with it is in EXPECT below
ODD = ["silence", "square", "noise", "chord", "tiny", "cut_data", "clipped_speech"]
# valid encodings of speech: every command must read them
VALID = ["sr8k", "sr44k", "stereo", "pcm24", "float", "flac", "ogg", "mp3"]
# lossy for the hidden channel (spread spectrum up to 8 kHz): a payload may or may not survive
LOSSY = {"sr8k", "ogg", "mp3"}
SUFFIX = {"flac": ".flac", "ogg": ".ogg", "mp3": ".mp3"}

SENTENCES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
]


def _espeak(text: str, voice: str, out: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng missing (apt-get install espeak-ng)")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(out), text], check=True, capture_output=True, timeout=60)
    x, sr = sf.read(out, dtype="float32")
    return x, int(sr)


def _variants(x: np.ndarray, sr: int, stem: str, d: Path) -> dict[str, Path]:
    """``x`` (mono, rate ``sr``) written in every VALID encoding."""
    import soundfile as sf

    from csss_core.audio import resample

    out: dict[str, Path] = {}
    for name in VALID:
        p = d / f"{stem}_{name}{SUFFIX.get(name, '.wav')}"
        if name == "sr8k":
            sf.write(p, resample(x, sr, 8000), 8000, subtype="PCM_16")
        elif name == "sr44k":
            sf.write(p, resample(x, sr, 44100), 44100, subtype="PCM_16")
        elif name == "stereo":
            sf.write(p, np.stack([x, 0.5 * x], axis=1), sr, subtype="PCM_16")
        elif name == "pcm24":
            sf.write(p, x, sr, subtype="PCM_24")
        elif name == "float":
            sf.write(p, x, sr, subtype="FLOAT")
        elif name == "flac":
            sf.write(p, x, sr, format="FLAC", subtype="PCM_16")
        elif name == "ogg":
            sf.write(p, x, sr, format="OGG", subtype="VORBIS")
        else:
            sf.write(p, x, sr, format="MP3", subtype="MPEG_LAYER_III")
        out[name] = p
    return out


def _sparse_wav(p: Path, seconds: float, sr: int = 8000) -> None:
    """A 16-bit mono WAV of ``seconds`` of zeros, written as a sparse file (no disk, no time)."""
    n = int(seconds * sr)
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, sr, 2 * sr, 2, 16)
    hdr = b"RIFF" + struct.pack("<I", 36 + 2 * n) + b"WAVE" + b"fmt " + fmt + b"data" + struct.pack("<I", 2 * n)
    with open(p, "wb") as f:
        f.write(hdr)
        f.truncate(len(hdr) + 2 * n)


@dataclass
class Material:
    """Everything the commands are run on."""

    d: Path
    files: dict[str, Path]  # BROKEN + ODD + VALID (speech) by name
    stego: dict[str, Path]  # VALID encodings of a pseudo-voice carrying a sealed payload
    seconds: dict[str, float]  # duration of each readable input at 16 kHz
    key: Path
    payload: Path
    eval_good: list[dict[str, Any]]  # a good 2-voice corpus manifest (absolute paths)


@pytest.fixture(scope="session")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    import soundfile as sf

    d = tmp_path_factory.mktemp("bad_audio")
    rng = np.random.default_rng(8)
    f: dict[str, Path] = {}
    speech, ssr = _espeak(SENTENCES[0], "en-us+m1", d / "speech_raw.wav")  # 2.4 s, 22.05 kHz
    t = np.arange(3 * SR) / SR

    f["empty0"] = d / "empty0.wav"
    f["empty0"].write_bytes(b"")
    f["header_only"] = d / "header_only.wav"
    sf.write(f["header_only"], np.zeros(0, np.float32), SR, subtype="PCM_16")
    f["text"] = d / "text.wav"
    f["text"].write_text("these are notes, not audio\n" * 20)
    good = d / "good.wav"
    sf.write(good, speech, ssr, subtype="PCM_16")
    f["cut_header"] = d / "cut_header.wav"
    f["cut_header"].write_bytes(good.read_bytes()[:30])
    for name, bad in (("nan", np.nan), ("inf", np.inf)):
        x = speech.copy()
        x[len(x) // 2] = bad
        f[name] = d / f"{name}.wav"
        sf.write(f[name], x, ssr, subtype="FLOAT")
    f["folder"] = d / "folder.wav"
    f["folder"].mkdir()
    f["missing"] = d / "missing.wav"
    f["too_long"] = d / "too_long.wav"
    _sparse_wav(f["too_long"], 4 * 3600 + 60)
    f["rate_1k"] = d / "rate_1k.wav"
    sf.write(f["rate_1k"], 0.1 * rng.normal(size=3000), 1000, subtype="PCM_16")

    f["silence"] = d / "silence.wav"
    sf.write(f["silence"], np.zeros(5 * SR), SR, subtype="PCM_16")
    f["square"] = d / "square.wav"
    sf.write(f["square"], np.where(np.sin(2 * np.pi * 200 * t) >= 0, 1.0, -1.0), SR, subtype="PCM_16")
    f["noise"] = d / "noise.wav"
    sf.write(f["noise"], np.clip(0.3 * rng.normal(size=t.size), -1, 1), SR, subtype="PCM_16")
    f["chord"] = d / "chord.wav"
    chord = sum(0.12 * np.sin(2 * np.pi * hz * t) for hz in (261.6, 329.6, 392.0, 523.3))
    sf.write(f["chord"], chord * np.minimum(1, 10 * (t % 0.5)), SR, subtype="PCM_16")  # struck every 0.5 s
    f["tiny"] = d / "tiny.wav"
    sf.write(f["tiny"], speech[: int(0.005 * ssr)], ssr, subtype="PCM_16")
    f["cut_data"] = d / "cut_data.wav"
    b = good.read_bytes()
    f["cut_data"].write_bytes(b[: 44 + (len(b) - 44) // 2 + 1])  # header says 2.4 s, half is there (odd cut)
    f["clipped_speech"] = d / "clipped_speech.wav"
    sf.write(f["clipped_speech"], np.clip(speech / np.max(np.abs(speech)) * 8, -1, 1), ssr, subtype="PCM_16")
    f.update(_variants(speech, ssr, "speech", d))

    # a pseudo-voice with a sealed payload (10 s: one 7.5 s payload copy fits), in every VALID encoding
    key = d / "call.key"
    long_speech = np.concatenate([_espeak(s, "en-us+m1", d / f"s{i}.wav")[0] for i, s in enumerate(SENTENCES)])
    src = d / "long_speech.wav"
    sf.write(src, long_speech, ssr, subtype="PCM_16")
    anon = d / "anon.wav"
    for argv in (["keygen", str(key)], ["anonymize", str(src), str(anon), "--key-file", str(key), "--seed", "3",
                                        "--no-asv-check"]):
        p = subprocess.run([sys.executable, "-m", "client.cli", *argv], capture_output=True, text=True, cwd=ROOT,
                           timeout=300)
        assert p.returncode == 0, p.stderr
    y, _ = sf.read(anon, dtype="float32")
    stego = _variants(y, SR, "stego", d)

    payload = d / "payload.json"
    payload.write_text(json.dumps({"embedding": rng.normal(size=EMB_DIM).round(4).tolist()}))

    seconds: dict[str, float] = {}
    for name, p in [*f.items(), *(("stego_" + k, v) for k, v in stego.items())]:
        try:
            info = sf.info(str(p))
            seconds[name] = info.frames / info.samplerate
        except (sf.LibsndfileError, RuntimeError, TypeError):
            pass

    # a good corpus: two voices, one enrollment and one trial utterance each
    from csss_core.audio import resample

    eval_good: list[dict[str, Any]] = []
    for spk, voice in (("m1", "en-us+m1"), ("f3", "en-us+f3")):
        for i, split in enumerate(("enroll", "trial")):
            x, r = _espeak(SENTENCES[1 + i], voice, d / f"ev_{spk}_{i}.wav")
            p = d / f"ev_{spk}_{split}.wav"
            sf.write(p, resample(x, r, SR), SR, subtype="PCM_16")
            eval_good.append({"utt_id": f"{spk}_{split}", "speaker": spk, "text": SENTENCES[1 + i], "split": split,
                              "path": str(p), "duration": len(x) / r, "sha256": ""})
    return Material(d, f, stego, seconds, key, payload, eval_good)


# ---------------------------------------------------------------- the commands

@dataclass(frozen=True)
class Command:
    """How to run one command on one input, and what its success must look like."""

    argv: Callable[[Material, Path, Path], list[str]]  # (material, input, output) -> arguments
    output: str | None  # what the command writes: a suffix (".wav"), "" for a folder, None for nothing
    stego_input: bool = False  # VALID files are the pseudo-voice with a payload, not plain speech
    check: Callable[[Material, str, dict[str, Any], Path], None] | None = None  # (material, file, result, output)


def _assert_wav_like(out: Path, seconds: float, silent: bool = False) -> None:
    """A 16 kHz mono file of ``seconds``, finite, and silence-like if ``silent`` else not silent."""
    from csss_core.audio import read_audio

    y, sr = read_audio(out, sample_rate=None)
    assert sr == SR and np.all(np.isfinite(y))
    assert abs(len(y) - seconds * SR) <= max(0.01 * seconds * SR, 64), (len(y), seconds * SR)
    rms = float(np.sqrt(np.mean(y**2)))
    assert rms < 0.01 if silent else rms > 1e-3, rms


def _check_wav(m: Material, name: str, res: dict[str, Any], out: Path) -> None:
    _assert_wav_like(out, m.seconds[name], silent=name in ("silence", "tiny"))  # tiny: 5 ms of lead-in


def _check_stego_wav(m: Material, name: str, res: dict[str, Any], out: Path) -> None:
    _assert_wav_like(out, m.seconds["stego_" + name])


def _check_embedding(m: Material, name: str, res: dict[str, Any], out: Path) -> None:
    emb = json.loads(res["out"].strip().splitlines()[-1])["embedding"]
    assert len(emb) == EMB_DIM and np.all(np.isfinite(emb))


def _check_opened(m: Material, name: str, res: dict[str, Any], out: Path) -> None:
    got = json.loads(res["out"].strip().splitlines()[-1])
    assert got["authenticated"] is True and len(got["embedding"]) == EMB_DIM


def _check_report(m: Material, name: str, res: dict[str, Any], out: Path) -> None:
    assert (out / "report.md").is_file() and (out / "results.json").is_file()
    json.loads((out / "results.json").read_text())


CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens; a call that gets this far says so
# (call-input runs --no-engine: the file is checked before the engine and the connection either way, and an
# engine without --enroll starts an ASV worker process per call)

COMMANDS: dict[str, Command] = {
    "anonymize": Command(lambda m, i, o: ["anonymize", str(i), str(o), "--key-file", str(m.key), "--seed", "5",
                                          "--no-asv-check"], ".wav", check=_check_wav),
    "embed-speaker": Command(lambda m, i, o: ["embed-speaker", str(i)], None, check=_check_embedding),
    "extract": Command(lambda m, i, o: ["extract", str(i), "--key-file", str(m.key)], None, True, _check_opened),
    "reconstruct": Command(lambda m, i, o: ["reconstruct", str(i), str(o), "--key-file", str(m.key)], ".wav", True,
                           _check_stego_wav),
    "reveal-ss": Command(lambda m, i, o: ["reveal", str(i), "--key-file", str(m.key), "--method", "ss"], None, True,
                         _check_opened),
    "reveal-net": Command(lambda m, i, o: ["reveal", str(i), "--key-file", str(m.key)], None),
    "hide-net": Command(lambda m, i, o: ["hide", str(i), str(o), "--payload-file", str(m.payload), "--key-file",
                                         str(m.key)], ".wav", check=_check_wav),
    "hide-ss": Command(lambda m, i, o: ["hide", str(i), str(o), "--payload-file", str(m.payload), "--method", "ss"],
                       ".wav", check=_check_wav),
    "roundtrip": Command(lambda m, i, o: ["roundtrip", str(i), str(o), "--key-file", str(m.key), "--seed", "2",
                                          "--no-quality"], ""),
    "roundtrip-streaming": Command(lambda m, i, o: ["roundtrip", str(i), str(o), "--key-file", str(m.key), "--seed",
                                                    "2", "--no-quality", "--streaming"], ""),
    "call-input": Command(lambda m, i, o: ["call", "--server", CLOSED, "--room", "r", "--input-file", str(i),
                                           "--output-file", str(o), "--quiet", "--no-engine"], ".wav"),
    "call-enroll": Command(lambda m, i, o: ["call", "--server", CLOSED, "--room", "r", "--enroll", str(i), "--silent",
                                            "--output-file", str(o), "--quiet"], ".wav"),
    "eval": Command(lambda m, i, o: ["eval", "--corpus", str(i), "--systems", "identity", "--attackers", "ge2e",
                                     "--no-wer", "--no-quality", "--out", str(o)], "", check=_check_report),
}

NO_SPEECH = r"no speech found"
NO_PAYLOAD = r"payload|authenticat"
NOT_LOCKED = r"did not lock onto the hidden identity"
ANY = None  # either outcome is sensible; only the form is checked
SERVER = r"cannot reach the signaling server"  # the file was accepted; the call got as far as connecting

# what each command must do with the ODD and VALID files: "ok", a regex it must fail with, or ANY
OK = "ok"
ALL_OK = dict.fromkeys(VALID, OK)
# the payload commands read a pseudo-voice with a payload in each VALID encoding; lossy ones may lose it
OPENS = {**ALL_OK, **dict.fromkeys(LOSSY, ANY)}
EXPECT: dict[str, dict[str, str | None]] = {
    "anonymize": {"silence": NO_SPEECH, "noise": NO_SPEECH, "square": ANY, "chord": ANY,
                  "tiny": r"at least 0\.25 s", "cut_data": OK, "clipped_speech": OK, **ALL_OK},
    "embed-speaker": {"silence": NO_SPEECH, "noise": NO_SPEECH, "square": ANY, "chord": ANY,
                      "tiny": r"at least 0\.25 s", "cut_data": OK, "clipped_speech": OK, **ALL_OK},
    "extract": {**dict.fromkeys(ODD, NO_PAYLOAD), **OPENS},
    "reconstruct": {**dict.fromkeys(ODD, NO_PAYLOAD), **OPENS},
    "reveal-ss": {**dict.fromkeys(ODD, NO_PAYLOAD), **OPENS},
    # (a net payload needs ~7 copies, 55 s of audio, to open: the VALID encodings go through reveal-ss)
    "reveal-net": dict.fromkeys(ODD, NO_PAYLOAD),
    # silence in, silence-like out (the payload rides on the carrier's level)
    "hide-net": {**dict.fromkeys(ODD, OK), "silence": ANY, "tiny": ANY, **ALL_OK},
    "hide-ss": {**dict.fromkeys(ODD, OK), "silence": ANY, "tiny": ANY, **ALL_OK},
    # The file is its own enrollment for those refused before the ASV-checked pseudo-voice draws (slow); the
    # rest learn the voice as they go (--streaming), which takes 3 s of speech before the identity is sealed:
    # none of these (3 s at most) can lock. A round trip that locks is tests/test_cli_roundtrip.py's.
    "roundtrip": {"silence": NO_SPEECH, "noise": NO_SPEECH, "tiny": r"at least 1 s"},
    "roundtrip-streaming": dict.fromkeys(["chord", "cut_data", "clipped_speech", "sr44k", "mp3"], NOT_LOCKED),
    # an accepted file gets the call as far as connecting (to nothing)
    "call-input": dict.fromkeys([*ODD, *VALID], SERVER),
    "call-enroll": {"silence": NO_SPEECH, "noise": NO_SPEECH, "tiny": r"at least 0\.25 s", "cut_data": SERVER,
                    "sr44k": SERVER, "mp3": SERVER},
    "eval": {"silence": ANY, "noise": ANY, "sr44k": OK, "stereo": OK, "mp3": OK},
}

CASES = [(c, f) for c in COMMANDS for f in [*BROKEN, *EXPECT[c]]]


# ---------------------------------------------------------------- running them


def _input_for(m: Material, command: str, name: str, run_dir: Path) -> Path:
    if command == "eval":
        return _bad_corpus(m, name, run_dir)
    if COMMANDS[command].stego_input and name in m.stego:
        return m.stego[name]
    return m.files[name]


def _bad_corpus(m: Material, name: str, run_dir: Path) -> Path:
    """The good corpus with the first trial utterance replaced by the file ``name``."""
    root = run_dir / f"corpus_{name}"
    root.mkdir()
    utts = [dict(u) for u in m.eval_good]
    utts[1]["path"] = str(m.files[name])
    (root / "corpus.json").write_text(json.dumps({"utterances": utts}))
    return root


def _output_for(command: str, name: str, run_dir: Path) -> Path:
    suffix = COMMANDS[command].output
    return run_dir / f"{command}_{name}{suffix or ''}"


_RESULTS: dict[str, dict[str, dict[str, Any]]] = {}


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bad_audio_runs")


def _results(m: Material, command: str, run_dir: Path) -> dict[str, dict[str, Any]]:
    """Run ``command`` on all its files in one subprocess (once per session)."""
    if command not in _RESULTS:
        d = run_dir / command
        d.mkdir()
        names = [f for c, f in CASES if c == command]
        calls = [COMMANDS[command].argv(m, _input_for(m, command, n, d), _output_for(command, n, d)) for n in names]
        req, resp = d / "calls.json", d / "results.json"
        req.write_text(json.dumps(calls))
        p = subprocess.run([sys.executable, "-m", "tests.test_bad_audio", str(req), str(resp)], cwd=ROOT,
                           capture_output=True, text=True, timeout=900)
        assert p.returncode == 0 and resp.is_file(), p.stderr[-3000:]
        _RESULTS[command] = dict(zip(names, json.loads(resp.read_text()), strict=True))
    return _RESULTS[command]


def _assert_one_line_error(err: str, pattern: str | None) -> str:
    """stderr holds exactly one ``csss: error:`` line (matching ``pattern``) and no traceback; returns it."""
    assert "Traceback" not in err, err
    errors = [ln for ln in err.splitlines() if ln.startswith("csss: error:")]
    assert len(errors) == 1, err
    if pattern is not None:
        assert re.search(pattern, errors[0]), errors[0]
    return errors[0]


def _expected(command: str, name: str) -> str | None:
    return BROKEN[name] if name in BROKEN else EXPECT[command][name]


@pytest.mark.parametrize("command,name", CASES, ids=[f"{c}-{f}" for c, f in CASES])
def test_bad_audio(material: Material, run_dir: Path, command: str, name: str) -> None:
    res = _results(material, command, run_dir)[name]
    out = _output_for(command, name, run_dir / command)
    want = _expected(command, name)
    cmd = COMMANDS[command]
    if want == "ok" or (want is ANY and res["rc"] == 0):
        assert res["rc"] == 0, res["err"][-2000:]
        assert "Traceback" not in res["err"]
        if cmd.output is not None and not command.startswith("call"):
            assert out.exists(), res["err"]
        if cmd.check is not None:
            cmd.check(material, name, res, out)
        return
    assert res["rc"] == 1, (res["rc"], res["err"][-2000:])
    line = _assert_one_line_error(res["err"], want)
    if name in BROKEN:
        assert str(material.files[name]) in line, line  # the message names the file
    if command.startswith("call") and want != SERVER:
        assert not re.search(SERVER, line)  # refused before connecting
    if name == "too_long":  # refused from the header: the 4 h of samples (460 MB as float32) were never read
        assert res["peak_mb_added"] < 100, res["peak_mb_added"]
    if cmd.output is not None:
        assert not out.exists(), f"{out} left behind after a failure"
    assert not list(out.parent.glob(f".{out.name}.*")), "temporary file left behind"


# ---------------------------------------------------------------- the real entry point


def _csss(*argv: str) -> subprocess.CompletedProcess[str]:
    """``csss ARGV`` in a process of its own (``python -m client.cli``, as the other CLI tests run it)."""
    return subprocess.run([sys.executable, "-m", "client.cli", *argv], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


@pytest.mark.parametrize("command,name", [("anonymize", "text"), ("reconstruct", "too_long"), ("extract", "folder"),
                                          ("reveal-net", "silence"), ("roundtrip", "silence"),
                                          ("call-input", "nan"), ("eval", "header_only")])
def test_real_process_gives_one_line(material: Material, tmp_path: Path, command: str, name: str) -> None:
    inp = _input_for(material, command, name, tmp_path)
    out = _output_for(command, name, tmp_path)
    p = _csss(*COMMANDS[command].argv(material, inp, out))
    assert p.returncode == 1
    _assert_one_line_error(p.stderr, _expected(command, name))
    assert not out.exists()


def test_unwritable_output_is_refused_before_the_work(material: Material, tmp_path: Path) -> None:
    """An output suffix write_audio cannot write (or a folder) is refused first: each of these would fail
    later for another reason (no speech, no payload, no payload file, no server) after its work."""
    silence = str(material.files["silence"])
    for argv, out in [(["anonymize", silence, "{o}", "--seed", "1"], tmp_path / "a.mp3"),
                      (["reconstruct", silence, "{o}", "--key-file", str(material.key)], tmp_path / "r.aiff"),
                      (["hide", str(material.files["flac"]), "{o}", "--payload-file", str(tmp_path / "none.json")],
                       tmp_path),
                      (["call", "--server", CLOSED, "--room", "r", "--silent", "--output-file", "{o}"],
                       tmp_path / "c.mp4")]:
        p = _csss(*[str(out) if a == "{o}" else a for a in argv])
        assert p.returncode == 1, p.stderr
        line = _assert_one_line_error(p.stderr, r"unsupported output format|is a directory")
        assert str(out) in line
        assert out == tmp_path or not out.exists()
    assert sorted(q.name for q in tmp_path.iterdir()) == []


# ---------------------------------------------------------------- the batch runner (a subprocess)


def _run_batch(req: Path, resp: Path) -> None:
    """Run ``client.cli.main`` once per argument list in ``req``; write exit code, stdout, stderr per call."""
    import resource

    from client.cli import main

    results = []
    for argv in json.loads(req.read_text()):
        out, err = io.StringIO(), io.StringIO()
        t0, rss0 = time.time(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as exc:  # argparse
                rc = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # what the interpreter does with an uncaught exception
                traceback.print_exc()
                rc = 1
        results.append({"rc": rc, "out": out.getvalue(), "err": err.getvalue(), "seconds": round(time.time() - t0, 2),
                        "peak_mb_added": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024})
    resp.write_text(json.dumps(results))


if __name__ == "__main__":
    _run_batch(Path(sys.argv[1]), Path(sys.argv[2]))
