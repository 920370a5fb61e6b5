"""sounddevice exercised headless: a private PulseAudio server with a null sink, started by the test.

The speaker sink plays a tone into the null sink; the microphone source records the sink's monitor
(this machine has no sound card: the null sink stands in for one, nothing else is faked).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from client.media import FRAME, RATE


@pytest.fixture()
def pulse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if shutil.which("pulseaudio") is None:
        pytest.fail("pulseaudio missing (apt-get install pulseaudio libasound2-plugins libportaudio2)")
    sock = tmp_path / "native"
    conf = tmp_path / "default.pa"
    conf.write_text(f"load-module module-native-protocol-unix socket={sock} auth-anonymous=1\n"
                    "load-module module-null-sink sink_name=csss_null rate=48000 channels=1\n"
                    "set-default-sink csss_null\nset-default-source csss_null.monitor\n")
    env = dict(os.environ, HOME=str(tmp_path), XDG_RUNTIME_DIR=str(tmp_path), PULSE_RUNTIME_PATH=str(tmp_path))
    proc = subprocess.Popen(["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "-F", str(conf),
                             "--log-target=stderr"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 15
    while not sock.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert sock.exists(), "pulseaudio did not start"
    monkeypatch.setenv("PULSE_SERVER", f"unix:{sock}")
    yield "pulse"
    proc.terminate()
    proc.wait(timeout=10)


def test_speaker_sink_and_microphone_source_through_a_null_sink(pulse):
    import sounddevice as sd

    sd._terminate()
    sd._initialize()  # PortAudio reads PULSE_SERVER when it starts
    names = [d["name"] for d in sd.query_devices()]
    assert "pulse" in names

    from client.media import MicSource, SpeakerSink

    t = np.arange(RATE * 3) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)

    async def run() -> np.ndarray:
        mic = MicSource(pulse)
        spk = SpeakerSink(pulse)
        got = []
        for i in range(0, len(tone), FRAME):
            spk.write(tone[i : i + FRAME])
            got.append(await asyncio.wait_for(mic.read(), 5.0))
        for _ in range(25):
            got.append(await asyncio.wait_for(mic.read(), 5.0))
        mic.close()
        spk.close()
        assert mic.start is not None and len(spk.times) == len(tone) // FRAME
        assert {len(b) for b in got} == {FRAME}  # 20 ms blocks from the device
        return np.concatenate(got)

    rec = asyncio.run(run())
    spec = np.abs(np.fft.rfft(rec * np.hanning(len(rec))))
    freqs = np.fft.rfftfreq(len(rec), 1 / RATE)
    assert abs(freqs[np.argmax(spec)] - 440) < 3
    assert np.sqrt(np.mean(rec**2)) > 0.05  # the tone came back at a real level, not noise
