"""Settings of the signaling server (environment variables prefixed ``CSSS_``)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where to listen, the ICE servers handed to clients, the shared room store and the limits."""

    model_config = SettingsConfigDict(env_prefix="CSSS_")

    host: str = "127.0.0.1"
    port: int = 8765
    ice_servers: list[str] = []
    # rooms shared by several server instances through Redis (redis://host:6379/0); None = in memory
    redis_url: str | None = None
    redis_peer_ttl_s: float = 30.0  # a party of an instance that died frees its slot after this long
    # limits per connection
    rate_per_s: float = 20.0  # sustained signaling messages per second
    rate_burst: int = 60  # messages allowed in a burst above the rate
    max_errors: int = 50  # refused messages before the connection is closed
    join_timeout_s: float = 10.0  # a connection must join a room this soon after opening
    wait_timeout_s: float = 600.0  # a party alone in its room is sent away after this long
    max_connections: int = 4000  # open signaling connections per instance
