"""A browser joins a desktop call's room as a listener (Debian's Chromium, headless, Playwright).

Two real ``csss call`` clients talk through the real server; one allows listeners, one does not. The
page (``/listen``), driven by keyboard only, hears the first caller's pseudo-voice (what the network
carries), is told the second declined, and never receives a key message. The recorded stream is
compared by ASV cosine with the caller's real voice.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from csss_core.audio import write_audio
from tests.conftest import start_server, stop_server, voice_clip

CHROMIUM = "/usr/bin/chromium"
CSSS = [sys.executable, "-m", "client.cli"]


def _call(url: str, room: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([*CSSS, "call", "--server", url, "--room", room, "--ice-host", "127.0.0.1", "--quiet",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONWARNINGS="ignore"))


def test_a_browser_listener_hears_only_the_pseudo_voice(tiny_corpus, tmp_path):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing (apt-get install chromium)")
    voice_a = voice_clip(tiny_corpus, "flite_slt", repeat=3)
    a_in, b_in = tmp_path / "a.wav", tmp_path / "b.wav"
    write_audio(a_in, voice_a, 16000)
    write_audio(b_in, voice_clip(tiny_corpus, "fest_ked", repeat=3), 16000)
    _, port, server = start_server(log=tmp_path / "server.log")
    url = f"http://127.0.0.1:{port}"
    calls = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
            page = browser.new_page()
            page.goto(url + "/listen")
            page.keyboard.press("Tab")  # keyboard only: the room field, then Enter submits
            assert page.evaluate("document.activeElement.id") == "room"
            page.keyboard.type("ear")
            page.keyboard.press("Enter")
            page.wait_for_function("document.getElementById('connection').textContent.includes('as a listener')",
                                   timeout=20_000)
            # the listener is there first; the callers arrive after it (the page offers to each as it comes)
            calls.append(_call(url, "ear", "--input-file", str(a_in), "--output-file", str(tmp_path / "a_out.wav"),
                               "--duration", "35", "--seed", "3", "--allow-listeners"))
            time.sleep(1.0)
            calls.append(_call(url, "ear", "--input-file", str(b_in), "--output-file", str(tmp_path / "b_out.wav"),
                               "--duration", "35", "--seed", "4"))
            page.wait_for_function("document.querySelectorAll('.stream').length === 2", timeout=60_000)
            try:
                page.wait_for_function("""[...document.querySelectorAll('.stream .state')].map(e => e.textContent)
                    .sort().join('|') === 'does not allow listeners|listening'""", timeout=60_000)
            except Exception:
                seen = page.evaluate("""({states: [...document.querySelectorAll('.stream .state')].map(
                    e => e.textContent), alert: document.getElementById('alert').textContent,
                    connection: document.getElementById('connection').textContent, messages: window.csssMessages})""")
                raise AssertionError(f"the page did not reach one listening + one declined: {seen}") from None
            listening = page.evaluate("""[...document.querySelectorAll('.stream')].find(
                s => s.querySelector('.state').textContent === 'listening').id.replace('party-', '')""")
            time.sleep(4.0)  # past the first seconds, while the caller's pseudo-voice settles
            rec = page.evaluate("window.csssRecord(8)")
            messages = page.evaluate("window.csssMessages")
            shot = tmp_path / "listen.png"
            page.screenshot(path=str(shot), full_page=True)
            for sel in ("#room", "#listen", "#leave", "#what-note", f"#spec-{listening}", f"#audio-{listening}"):
                assert page.is_visible(sel), sel
            assert "pseudo-voice" in page.inner_text("#what-note")
            page.keyboard.press("Tab")  # Leave is reachable and works from the keyboard
            page.focus("#leave")
            page.keyboard.press("Enter")
            page.wait_for_function("document.getElementById('connection').textContent === 'disconnected'",
                                   timeout=10_000)
            browser.close()
        reports = []
        for c in calls:
            out, err = c.communicate(timeout=120)
            assert c.returncode == 0, err[-2000:]
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for c in calls:
            if c.poll() is None:
                c.kill()
        stop_server(server)
    keep = Path(os.environ.get("CSSS_ARTIFACTS", tmp_path))
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep / "listen_screenshot.png")

    ra, rb = reports
    assert ra["listeners_served"] == 1 and rb["listeners_served"] == 0
    for r in reports:  # the call itself went on to its end (the first to hang up tells the other)
        assert r["connected"] and r["ended_by"] in ("duration", "peer-left") and r["seconds_connected"] > 33, r
        assert not r["errors"], r["errors"]
    assert "key" not in messages and "joined" in messages  # the page never saw the key exchange

    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert img.shape[0] > 300 and img.std() > 20

    from csss_core.evaluation.attackers import GE2EAttacker

    heard = np.asarray(rec["streams"][listening], np.float32)
    assert rec["rate"] == 16000 and len(heard) > 6 * 16000
    assert np.sqrt(np.mean(heard**2)) > 1e-3  # audio flowed to the listener
    g = GE2EAttacker()
    half = len(voice_a) // 2
    e_a = g.embed(voice_a[:half])
    same = float(e_a @ g.embed(voice_a[half:]))  # the caller's real voice against itself
    cos = float(e_a @ g.embed(heard))
    print(f"GE2E cosine to the caller's real voice: listener heard {cos:.3f}; the real voice itself {same:.3f}")
    assert cos < same - 0.15 and cos < 0.75
