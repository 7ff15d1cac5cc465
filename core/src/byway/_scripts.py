"""The scripts under their old names, for callers not yet on the typed wrappers of
:mod:`byway.store` (the scripts themselves are ``byway/store/lua/*.lua``)."""

from __future__ import annotations

from byway.store.finish import FINISH, SUSPEND
from byway.store.script import Script, execute, source
from byway.store.send import RESUME, SEND
from byway.store.session import CANCEL_TREE, KICK_SESSION, RENEW_LOCK, TRANSITION
from byway.store.start import START
from byway.store.waits import CLAIM_DEADLINES, GROUP_RESULT
from byway.store.workers import FIND_ONLINE, RELEASE_LEASE, RENEW_LEASE

__all__ = [
    "CANCEL_TREE",
    "CLAIM_DEADLINES",
    "FIND_ONLINE",
    "FINISH",
    "GROUP_RESULT",
    "KICK_SESSION",
    "LIB",
    "RELEASE_LEASE",
    "RENEW_LEASE",
    "RENEW_LOCK",
    "RESUME",
    "SEND",
    "START",
    "SUSPEND",
    "TRANSITION",
    "Script",
    "execute",
]

#: the shared Lua helpers (``store/lua/lib.lua``), included by the scripts that use them
LIB = source("lib.lua")
