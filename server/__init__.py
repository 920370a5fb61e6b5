"""Signaling server (FastAPI on uvicorn); built in the real-time calls issue."""
