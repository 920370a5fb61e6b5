import json
import urllib.request


def test_real_uvicorn_serves_health(server):
    _, port, _ = server
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
        body = json.loads(r.read())
    assert body["status"] == "ok" and body["version"]
