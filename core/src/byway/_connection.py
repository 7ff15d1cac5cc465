"""asyncio connections that build the Redis protocol with hiredis (in C).

redis-py's asyncio connection packs every argument of every command in Python; with the
scripts Byway runs per task (20-odd arguments each) that was a third of a worker's CPU
under load (cProfile, 20,000 no-op tasks). redis-py's synchronous client already uses
``hiredis.pack_command`` when hiredis is installed; these classes do the same for asyncio
and fall back to redis-py's packer for anything hiredis does not take.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

__all__ = ["connection_class_for"]


class _HiredisPacking:
    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        if isinstance(first, str):
            if " " in first:  # "CLIENT SETINFO": the server wants separate words
                args = (*first.encode().split(), *args[1:])
        elif b" " in first:
            args = (*first.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            return super().pack_command(*args)  # type: ignore[misc, no-any-return]


class HiredisConnection(_HiredisPacking, Connection):
    pass


class HiredisUnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    pass


class HiredisSSLConnection(_HiredisPacking, SSLConnection):
    pass


def connection_class_for(scheme: str) -> type[Any]:
    """The connection class for a ``redis://``, ``rediss://`` or ``unix://`` URL."""
    if scheme == "unix":
        return HiredisUnixConnection
    if scheme == "rediss":
        return HiredisSSLConnection
    return HiredisConnection
