"""The browser demo in Debian's Chromium, headless, driven by Playwright.

Chromium's fake microphone plays a speech file; the page calls the local engine peer (``csss demo``)
over WebRTC and gets the pseudo-voice and the reconstruction back. The test drives the page by
keyboard only, waits for "verified", records both received streams in the page and compares them by
ASV cosine with the fake microphone's speaker; a screenshot is saved and checked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from csss_core.audio import resample, write_audio
from tests.conftest import free_port, voice_clip, wait_http

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture()
def demo(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = open(tmp_path / "demo.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "client.cli", "demo", "--port", str(port)], stdout=log,
                            stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health", 60)
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def _browser(p, fake_wav: Path | None, grant: bool):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing (apt-get install chromium)")
    args = ["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--use-fake-device-for-media-stream"]
    if fake_wav is not None:
        args.append(f"--use-file-for-fake-audio-capture={fake_wav}")
    if grant:
        args.append("--use-fake-ui-for-media-stream")
    else:
        args.append("--deny-permission-prompts")
    return p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)


def test_page_calls_the_engine_peer_and_reaches_verified(tiny_corpus, demo, tmp_path):
    from playwright.sync_api import sync_playwright

    speaker = voice_clip(tiny_corpus, "flite_slt", repeat=3)
    fake = tmp_path / "mic.wav"
    write_audio(fake, resample(speaker, 16000, 48000), 48000)
    with sync_playwright() as p:
        browser = _browser(p, fake, grant=True)
        page = browser.new_page()
        page.goto(demo + "/demo")
        page.keyboard.press("Tab")  # keyboard only: the Start button is the first focusable element
        assert page.evaluate("document.activeElement.id") == "start"
        page.keyboard.press("Enter")
        try:
            page.wait_for_function("document.getElementById('identity').dataset.state === 'verified'",
                                   timeout=150_000)
        except Exception:
            figures = {k: page.inner_text("#" + k) for k in ("connection", "identity", "lock", "asv-pseudo")}
            raise AssertionError(f"identity not verified: {figures}") from None
        assert "after connecting" in page.inner_text("#lock")
        rec = page.evaluate("window.csssRecord(8)")
        page.wait_for_function("document.getElementById('asv-recon').textContent.includes('GE2E')", timeout=30_000)
        # switch what is played with the keyboard: focus the radio group, arrow to the second option
        page.focus("input[value=pseudo]")
        page.keyboard.press("ArrowDown")
        assert page.evaluate("document.getElementById('audio-pseudo').muted") is True
        assert page.evaluate("document.getElementById('audio-recon').muted") is False
        # the live spectrograms show sound: pixel values vary across each canvas
        for which in ("pseudo", "recon"):
            spread = page.evaluate(f"""(() => {{ const c = document.getElementById('spec-{which}');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let s = 0, s2 = 0, n = 0;
                for (let i = 0; i < d.length; i += 4) {{ s += d[i]; s2 += d[i] * d[i]; n++; }}
                return Math.sqrt(s2 / n - (s / n) ** 2); }})()""")
            assert spread > 10, (which, spread)
        shot = tmp_path / "demo.png"
        page.screenshot(path=str(shot), full_page=True)
        for sel in ("#start", "#stop", "#spec-pseudo", "#spec-recon", "#identity", "#asv-pseudo", "#asv-recon",
                    "#local-note"):
            assert page.is_visible(sel), sel
        assert "this machine" in page.inner_text("#local-note")
        browser.close()
    keep = Path(os.environ.get("CSSS_ARTIFACTS", tmp_path))
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep / "demo_screenshot.png")

    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert img.shape[0] > 400 and img.shape[1] > 400
    assert img.std() > 20  # a real page with drawn spectrograms, not a blank one

    from csss_core.evaluation.attackers import GE2EAttacker

    g = GE2EAttacker()
    e = g.embed(speaker)
    pseudo = np.asarray(rec["pseudo"], np.float32)
    recon = np.asarray(rec["recon"], np.float32)
    assert rec["rate"] == 16000 and len(pseudo) > 6 * 16000
    assert np.sqrt(np.mean(pseudo**2)) > 1e-3 and np.sqrt(np.mean(recon**2)) > 1e-3  # audio flowed back
    cos_p, cos_r = float(e @ g.embed(pseudo)), float(e @ g.embed(recon))
    print(f"ASV cosine to the fake microphone's speaker: pseudo-voice {cos_p:.3f}, reconstruction {cos_r:.3f}")
    assert cos_r > cos_p + 0.03
    assert cos_r >= 0.70


def test_refused_microphone_is_said_clearly(demo):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = _browser(p, None, grant=False)
        page = browser.new_page()
        page.goto(demo + "/demo")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.wait_for_function("document.getElementById('alert').textContent.length > 0", timeout=20_000)
        assert "microphone was refused" in page.inner_text("#alert")
        assert page.inner_text("#connection") == "no microphone"
        browser.close()
