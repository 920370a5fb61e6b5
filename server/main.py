"""The signaling server application (FastAPI on uvicorn).

So far it serves only its health endpoint; rooms, WebSocket signaling and the browser page are the
real-time calls issue. It never touches audio or keys.
"""

from __future__ import annotations

import argparse

from fastapi import FastAPI

from csss_core import __version__
from server.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application."""
    s = settings or Settings()
    app = FastAPI(title="CSSS signaling", version=__version__)

    @app.get("/health")
    def health() -> dict[str, object]:
        """Liveness and version."""
        return {"status": "ok", "version": __version__, "ice_servers": len(s.ice_servers)}

    return app


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``csss-server``."""
    import uvicorn

    s = Settings()
    p = argparse.ArgumentParser(prog="csss-server", description="CSSS signaling server")
    p.add_argument("--host", default=s.host)
    p.add_argument("--port", type=int, default=s.port)
    a = p.parse_args(argv)
    uvicorn.run(create_app(s), host=a.host, port=a.port, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
