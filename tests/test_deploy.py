"""The deployment files: docker-compose.yml validates and matches the server's real options."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_file_validates():
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose not installed (./run installs it: apt-get install --no-install-recommends "
                    "docker-compose)")
    p = subprocess.run([exe, "-f", str(ROOT / "docker-compose.yml"), "config"], capture_output=True, text=True,
                       timeout=60, env={"PATH": "/usr/bin:/bin", "TURN_PASSWORD": "s3cret", "PUBLIC_HOST": "192.0.2.7"})
    assert p.returncode == 0, p.stderr
    cfg = yaml.safe_load(p.stdout)
    services = cfg["services"]
    assert {"redis", "server1", "server2", "coturn"} <= set(services)
    helptext = subprocess.run([sys.executable, "-m", "server.main", "--help"], capture_output=True, text=True,
                              cwd=ROOT, timeout=60).stdout
    for name in ("server1", "server2"):
        s = services[name]
        assert s["environment"]["CSSS_REDIS_URL"] == "redis://redis:6379/0"
        assert "redis" in s["depends_on"]
        cmd = s["command"]
        assert cmd[0] == "csss-server"
        for flag in (a for a in cmd[1:] if a.startswith("--")):
            assert flag in helptext, f"{name}: csss-server has no option {flag}"
        ice = yaml.safe_load(s["environment"]["CSSS_ICE_SERVERS"])
        assert "turn:csss:s3cret@192.0.2.7:3478" in ice  # the variables reach the servers
    assert services["server1"]["command"][-1] != services["server2"]["command"][-1]  # two distinct ports
    assert "--user=csss:s3cret" in services["coturn"]["command"]


def test_turn_urls_carry_credentials():
    from client.call import _ice_servers

    turn, stun = _ice_servers(["turn:alice:pa:ss@turn.example.org:3478?transport=udp", "stun:stun.example.org"])
    assert turn.urls == "turn:turn.example.org:3478?transport=udp"
    assert turn.username == "alice" and turn.credential == "pa:ss"
    assert stun.urls == "stun:stun.example.org" and stun.username is None
