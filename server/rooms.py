"""Rooms of at most two parties. One registry per application instance (no module-level state)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol


class Peer(Protocol):
    """Something that can be sent a text frame."""

    async def send_text(self, data: str) -> None:
        """Send one text message."""
        ...


class RoomFull(Exception):
    """The room already has two parties."""


@dataclass
class RoomRegistry:
    """Room name -> its parties."""

    capacity: int = 2
    rooms: dict[str, list[Peer]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def join(self, room: str, peer: Peer) -> list[Peer]:
        """Add ``peer``; returns the others already there. Raises :class:`RoomFull`."""
        async with self.lock:
            members = self.rooms.setdefault(room, [])
            if len(members) >= self.capacity:
                raise RoomFull(room)
            others = list(members)
            members.append(peer)
            return others

    async def leave(self, room: str, peer: Peer) -> list[Peer]:
        """Remove ``peer``; returns who remains. Empty rooms are dropped."""
        async with self.lock:
            members = self.rooms.get(room, [])
            if peer in members:
                members.remove(peer)
            if not members:
                self.rooms.pop(room, None)
            return list(members)

    async def others(self, room: str, peer: Peer) -> list[Peer]:
        """The other parties of ``room``."""
        async with self.lock:
            return [p for p in self.rooms.get(room, []) if p is not peer]
