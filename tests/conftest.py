"""Shared fixtures: small synthesized corpora built once per session."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from csss_core.corpus import Corpus, build_corpus, missing_synthesizers, voice_by_name


def _need_synth() -> None:
    missing = missing_synthesizers()
    if missing:
        pytest.fail(f"speech synthesizers missing: {missing} (apt-get install espeak-ng flite festival)")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """Four clearly different voices, six sentences each (two for enrollment)."""
    _need_synth()
    root = tmp_path_factory.mktemp("tiny_corpus")
    voices = [voice_by_name(v) for v in ("flite_slt", "esp_us_m1", "fest_ked", "flite_awb")]
    build_corpus(root, voices, n_sentences=6, n_enroll=2)
    return Corpus.load(root)


@pytest.fixture()
def tone() -> np.ndarray:
    """One second of a 220 Hz tone with a little noise at 16 kHz."""
    t = np.arange(16000) / 16000
    rng = np.random.default_rng(0)
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.normal(size=t.size)).astype(np.float32)


def speech(corpus: Corpus, speaker: str, index: int = 0) -> np.ndarray:
    """One utterance of ``speaker`` from a corpus."""
    from csss_core.audio import read_audio

    utts = [u for u in corpus.utterances if u.speaker == speaker]
    x, _ = read_audio(corpus.path(utts[index]))
    return x


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return Path(__file__).parent / "data"


def wait_http(url: str, timeout: float = 60.0) -> None:
    """Wait until ``url`` answers (a server that a test started)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(env: dict[str, str] | None = None, args: list[str] | None = None,
                 log: Path | None = None) -> tuple[str, int, subprocess.Popen]:
    """Start the real signaling server (uvicorn) on a free 127.0.0.1 port: (ws URL, port, process).

    ``env``: extra environment (``CSSS_*`` settings); ``log``: where its output goes (default: dropped).
    """
    import os

    port = free_port()
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 (the process owns it)
    proc = subprocess.Popen([sys.executable, "-m", "server.main", "--host", "127.0.0.1", "--port", str(port),
                             *(args or [])], stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 30)
    except AssertionError:
        proc.kill()
        raise
    return f"ws://127.0.0.1:{port}/ws", port, proc


def stop_server(proc: subprocess.Popen) -> None:
    """Stop a server started by :func:`start_server` (gracefully, then for sure)."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int, subprocess.Popen]]:
    """The real signaling server (uvicorn) on a free 127.0.0.1 port: (ws URL, port, process)."""
    url, port, proc = start_server()
    yield url, port, proc
    stop_server(proc)


def voice_clip(corpus: Corpus, speaker: str, repeat: int = 2) -> np.ndarray:
    """All of ``speaker``'s utterances back to back, ``repeat`` times (a long stretch of one voice)."""
    utts = [u for u in corpus.utterances if u.speaker == speaker]
    from csss_core.audio import read_audio

    one = np.concatenate([read_audio(corpus.path(u))[0] for u in utts])
    return np.concatenate([one] * repeat)
