"""Signed commands (optional, off by default): HMAC-SHA256 over every command Byway writes
to a control stream, checked by workers before they act on it.

With ``BYWAY_SIGNING_KEYS`` set (a comma list: the first key signs, every key verifies,
so keys rotate without stopping anything), each command gets a top-level field::

    "signature": {"ts": <ms>, "nonce": "<16 hex>", "mac": "<64 hex>"}

``mac`` is HMAC-SHA256 over the canonical JSON (keys sorted, no whitespace, UTF-8) of
``["byway-sig-1", <stream>, ts, nonce, <the command without "signature">]``. The stream
the command is written to is part of what is signed, so a command copied to another
agent type's or worker's stream does not verify. Decoders ignore unknown top-level fields
(Byway's and by-framework's alike), so a signed command reads as before.

A worker refuses (dead-letters and acknowledges) an entry whose signature is missing
(``unsigned``), does not verify with any key (``bad signature``), was signed more than
``BYWAY_SIGNING_MAX_AGE_SECONDS`` (default 300) before Redis stored it, or later than
it by more than the clock-skew allowance (``expired``), or whose signature another entry
already carried (``replayed``). Age is measured against the entry id's time, not the
reader's clock, so a backlog read after an outage is not refused. Seen signatures are
kept in Redis for the max age window (one key each, ``SET NX`` in one pipeline per read
batch; only a signature seen before costs a second round trip); the same entry delivered
again (recovery after a worker died, a restart) is accepted.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from byway.errors import ConfigurationError, ProtocolError
from byway.keys import Keys
from byway.limits import DEFAULT_MAX_COMMAND_BYTES
from byway.protocol import now_ms

__all__ = [
    "BAD_SIGNATURE",
    "DEFAULT_MAX_AGE_SECONDS",
    "ENV_KEYS",
    "ENV_MAX_AGE",
    "EXPIRED",
    "REPLAYED",
    "SKEW_MS",
    "UNSIGNED",
    "Signer",
]

ENV_KEYS = "BYWAY_SIGNING_KEYS"
ENV_MAX_AGE = "BYWAY_SIGNING_MAX_AGE_SECONDS"
DEFAULT_MAX_AGE_SECONDS = 300.0
#: how far the signer's clock may be off Redis's (either way)
SKEW_MS = 30_000
#: shortest key accepted (characters); ``secrets.token_hex(32)`` gives 64
MIN_KEY_CHARS = 16
VERSION = "byway-sig-1"

# refusal reasons (the first words of a dead letter's ``reason``)
UNSIGNED = "unsigned"
BAD_SIGNATURE = "bad signature"
EXPIRED = "expired"
REPLAYED = "replayed"

_MAC_RE = re.compile(r"^[0-9a-f]{64}$")
_NONCE_RE = re.compile(r"^[0-9A-Za-z_-]{8,64}$")
_encode = msgspec.json.Encoder().encode
_decode_any = msgspec.json.decode


class _Signature(msgspec.Struct, forbid_unknown_fields=False):
    ts: int
    nonce: str
    mac: str


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class Signer:
    """Signs commands with the first of ``keys`` and verifies them with any of them.

    ``Signer.from_env()`` builds one from ``BYWAY_SIGNING_KEYS`` (None when unset).
    """

    def __init__(
        self, keys: Sequence[str | bytes], *, max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS
    ) -> None:
        if isinstance(keys, (str, bytes)) or not keys:
            raise ConfigurationError("keys: expected a non-empty list of signing keys")
        encoded = [k.encode() if isinstance(k, str) else bytes(k) for k in keys]
        for i, key in enumerate(encoded, 1):
            if len(key) < MIN_KEY_CHARS:
                raise ConfigurationError(
                    f"{ENV_KEYS}: key {i} has {len(key)} characters; expected at least "
                    f"{MIN_KEY_CHARS} (make one with: python -c 'import secrets; "
                    "print(secrets.token_hex(32))')"
                )
        if not isinstance(max_age_seconds, (int, float)) or not 0 < max_age_seconds <= 86_400:
            raise ConfigurationError(
                f"{ENV_MAX_AGE}: expected a number of seconds in (0, 86400], "
                f"got {max_age_seconds!r}"
            )
        self._keys = encoded
        self.max_age_ms = int(max_age_seconds * 1000)
        #: how long a seen signature is remembered: past it, its entry is expired anyway
        self.seen_ttl_ms = self.max_age_ms + 2 * SKEW_MS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Signer | None:
        """The signer ``BYWAY_SIGNING_KEYS`` configures, or None when it is unset or empty."""
        env = os.environ if environ is None else environ
        raw = env.get(ENV_KEYS, "").strip()
        if not raw:
            return None
        keys = [part.strip() for part in raw.split(",")]
        if not all(keys):
            raise ConfigurationError(
                f"{ENV_KEYS}: expected a comma list of keys without empty items "
                "(the first signs, all verify)"
            )
        age_raw = env.get(ENV_MAX_AGE, "").strip()
        try:
            max_age = float(age_raw) if age_raw else DEFAULT_MAX_AGE_SECONDS
        except ValueError:
            raise ConfigurationError(
                f"{ENV_MAX_AGE}: expected a number of seconds, got {age_raw!r}"
            ) from None
        return cls(keys, max_age_seconds=max_age)

    # -- signing ---------------------------------------------------------------------------

    def _mac(self, key: bytes, stream: str, ts: int, nonce: str, command: Any) -> str:
        message = msgspec.json.encode([VERSION, stream, ts, nonce, command], order="sorted")
        return hmac.new(key, message, hashlib.sha256).hexdigest()

    def sign(self, data: bytes, stream: str) -> bytes:
        """``data`` (a command's JSON) with a fresh ``signature`` for ``stream``; a
        signature it already carries is replaced."""
        try:
            command = _decode_any(data)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise ProtocolError(f"command: cannot sign what is not JSON ({exc})") from None
        if not isinstance(command, dict):
            raise ProtocolError("command: expected a JSON object to sign")
        command.pop("signature", None)
        ts, nonce = now_ms(), secrets.token_hex(8)
        mac = self._mac(self._keys[0], stream, ts, nonce, command)
        command["signature"] = {"ts": ts, "nonce": nonce, "mac": mac}
        return _encode(command)

    # -- verifying -------------------------------------------------------------------------

    def _check(self, data: Any, stream: str, entry_id: str) -> tuple[str, str]:
        """(refusal reason or "", the mac) of one entry's data."""
        try:
            command = _decode_any(data) if isinstance(data, (bytes, str)) else None
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, ValueError):
            command = None
        if not isinstance(command, dict) or "signature" not in command:
            return f"{UNSIGNED}: the command has no `$.signature` ({ENV_KEYS} is set)", ""
        try:
            sig = msgspec.convert(command.pop("signature"), _Signature)
        except msgspec.ValidationError as exc:
            return f"{BAD_SIGNATURE}: {exc} (in `$.signature`)", ""
        if not _MAC_RE.match(sig.mac) or not _NONCE_RE.match(sig.nonce):
            return f"{BAD_SIGNATURE}: `$.signature.mac` or `.nonce` is malformed", ""
        try:
            macs = [self._mac(key, stream, sig.ts, sig.nonce, command) for key in self._keys]
        except (TypeError, ValueError, OverflowError) as exc:
            return f"{BAD_SIGNATURE}: the command cannot be re-encoded ({exc})", ""
        given = sig.mac.encode()
        if not any(hmac.compare_digest(mac.encode(), given) for mac in macs):
            return f"{BAD_SIGNATURE}: `$.signature.mac` matches none of {ENV_KEYS}", ""
        try:
            written = int(entry_id.split("-", 1)[0])
        except ValueError:
            return f"{BAD_SIGNATURE}: entry id {entry_id[:40]!r} carries no time", ""
        # an id from the future (a writer chose it with XADD, and every later id follows
        # it) says nothing of when the entry was written: this worker's clock does
        written = min(written, now_ms() + SKEW_MS)
        age = written - sig.ts
        if age > self.max_age_ms + SKEW_MS:
            return (
                f"{EXPIRED}: signed {age / 1000:.0f} s before it was written "
                f"(at most {self.max_age_ms / 1000:.0f} s; {ENV_MAX_AGE})",
                "",
            )
        if age < -SKEW_MS:
            return (
                f"{EXPIRED}: signed {-age / 1000:.0f} s after it was written "
                f"(clock skew allowance {SKEW_MS // 1000} s)",
                "",
            )
        return "", sig.mac

    def verify(self, data: bytes, stream: str, entry_id: str) -> str:
        """Why the entry ``entry_id`` of ``stream`` holding ``data`` is refused, or "" when
        its signature verifies and is fresh (replays are checked by :meth:`screen`)."""
        return self._check(data, stream, entry_id)[0]

    async def screen(
        self, redis: Any, keys: Keys, reply: Any, max_bytes: int = DEFAULT_MAX_COMMAND_BYTES
    ) -> dict[tuple[str, str], str]:
        """The entries of an ``XREADGROUP``/``XAUTOCLAIM``-shaped ``reply`` to refuse:
        ``{(stream, entry id): reason}``. One pipeline records the signatures that
        verified; a signature already recorded for another entry is ``replayed``. An entry
        over ``max_bytes`` is not parsed here (the decoder refuses it for its size)."""
        refused: dict[tuple[str, str], str] = {}
        passed: list[tuple[str, str, str]] = []
        for stream_raw, entries in reply or ():
            stream = _text(stream_raw)
            for entry_raw, fields in entries or ():
                if not isinstance(fields, dict):
                    continue  # a deleted entry: the decoder handles it
                entry_id = _text(entry_raw)
                data = fields.get(b"data")
                if isinstance(data, bytes) and len(data) > max_bytes:
                    continue
                reason, mac = self._check(data, stream, entry_id)
                if reason:
                    refused[(stream, entry_id)] = reason
                else:
                    passed.append((stream, entry_id, mac))
        if not passed:
            return refused
        async with redis.pipeline(transaction=False) as pipe:
            for stream, entry_id, mac in passed:
                key = keys.signing_seen(mac)
                pipe.set(key, f"{stream} {entry_id}", nx=True, px=self.seen_ttl_ms)
            taken = await pipe.execute()
        # seen before: the same entry again (a redelivery) or another entry (a replay);
        # rare, so only these cost a second round trip
        again = [item for item, fresh in zip(passed, taken, strict=True) if not fresh]
        if again:
            async with redis.pipeline(transaction=False) as pipe:
                for _, _, mac in again:
                    pipe.get(keys.signing_seen(mac))
                holders = await pipe.execute()
            for (stream, entry_id, _), holder in zip(again, holders, strict=True):
                if holder is not None and _text(holder) != f"{stream} {entry_id}":
                    refused[(stream, entry_id)] = (
                        f"{REPLAYED}: its signature was first used by {_text(holder)[:200]}"
                    )
        return refused
