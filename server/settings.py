"""Settings of the signaling server (environment variables prefixed ``CSSS_``)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Host, port and the ICE servers handed to clients."""

    model_config = SettingsConfigDict(env_prefix="CSSS_")

    host: str = "127.0.0.1"
    port: int = 8765
    ice_servers: list[str] = []
