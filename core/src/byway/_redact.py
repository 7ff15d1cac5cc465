"""Credentials out of whatever Byway prints: URLs, DSNs, error messages, log lines.

:func:`redact_url` masks the password of one Redis URL or PostgreSQL DSN, wherever it is
written: in the userinfo (``redis://user:secret@host/0``, ``unix://:secret@/run/r.sock``)
or in the query (``?password=secret``, percent-encoded names included), for every scheme;
a libpq keyword DSN (``host=db password=secret``) too. The user name stays visible: it
names the ACL user, which is what an operator needs to read a refusal.

:func:`redact_text` does the same to every URL and ``password=`` pair inside a longer text
(an exception's message, a log argument), so one function serves settings, the CLI, the
logs and the plugins alike.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["MASK", "redact_text", "redact_url", "url_secrets"]

MASK = "***"

#: passwords shorter than this are masked where they are written, not searched for in text
_MIN_SECRET = 4

#: query keys and DSN keywords whose value is a credential (matched after unquoting)
_SECRET_KEY = re.compile(r"pass|pwd|secret|token|auth|credential|api_?key", re.IGNORECASE)

#: a URL inside a text: up to whitespace, a quote or an angle bracket
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*")

#: ``key=value`` outside URLs (libpq keyword DSNs, messages that quote one); the value
#: may be single-quoted with backslash escapes, as libpq allows
_KEYWORD_PAIR = re.compile(
    r"(?P<key>\b(?:[A-Za-z_]*password|passwd|pwd|[A-Za-z_]*secret|[A-Za-z_]*_token"
    r"|api_?key|credentials?)\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'?|[^\s&;,'\"]+)",
    re.IGNORECASE,
)


def _mask_userinfo(netloc: str) -> str:
    # the split urllib and redis-py make: userinfo ends at the LAST '@' of the netloc
    userinfo, at, hostinfo = netloc.rpartition("@")
    if not at:
        return netloc
    user, colon, password = userinfo.partition(":")
    if not colon or not password:
        return netloc
    return f"{user}:{MASK}@{hostinfo}"


def _mask_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        key, eq, value = pair.partition("=")
        if eq and value and _SECRET_KEY.search(unquote(key.replace("+", " "))):
            value = MASK
        pairs.append(f"{key}{eq}{value}")
    return "&".join(pairs)


def redact_url(url: str) -> str:
    """``url`` with every password in it replaced by ``***`` (see the module docstring)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _KEYWORD_PAIR.sub(lambda m: m["key"] + MASK, url)
    # the same boundaries urllib.parse.urlsplit draws: the authority ends at / ? or #
    end = len(rest)
    for mark in "/?#":
        found = rest.find(mark)
        if found != -1:
            end = min(end, found)
    netloc, tail = rest[:end], rest[end:]
    path, q, query = tail.partition("?")
    if q:
        query, hash_, fragment = query.partition("#")
        tail = f"{path}?{_mask_query(query)}{hash_}{fragment}"
    return f"{scheme}://{_mask_userinfo(netloc)}{tail}"


def url_secrets(url: str) -> list[str]:
    """The passwords written in ``url`` (as written and percent-decoded), longest first."""
    found: set[str] = set()
    _, sep, rest = url.partition("://")
    if sep:
        netloc = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
        userinfo, at, _ = netloc.rpartition("@")
        if at and ":" in userinfo:
            found.add(userinfo.partition(":")[2])
        for pair in rest.partition("?")[2].partition("#")[0].split("&"):
            key, eq, value = pair.partition("=")
            if eq and _SECRET_KEY.search(unquote(key.replace("+", " "))):
                found.add(value)
    else:
        found.update(m["value"].strip("'") for m in _KEYWORD_PAIR.finditer(url))
    found |= {unquote(value) for value in found}
    return sorted((v for v in found if v and v != MASK), key=len, reverse=True)


def redact_text(text: str, url: str | None = None) -> str:
    """``text`` with the password of every URL and ``password=`` pair in it masked, and,
    given the ``url`` the text is about, that URL's passwords wherever they appear."""
    for secret in url_secrets(url) if url else ():
        if len(secret) >= _MIN_SECRET:  # a shorter one would mask ordinary words too
            text = text.replace(secret, MASK)
    if "://" not in text and "=" not in text:
        return text
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text)
    return _KEYWORD_PAIR.sub(lambda m: m["key"] + MASK, text)
