"""The response :class:`~byway.discovery_http.DiscoveryHttpClient` returns: an
``httpx.Response`` with by-framework's ``data`` beside it. Imported only once httpx is
known to be installed."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx

__all__ = ["HttpResponse"]

_UNSET: Any = object()


class HttpResponse(httpx.Response):
    """An ``httpx.Response`` (read whole) whose ``data`` is the decoded JSON body when
    the content type is JSON, else the text (by-framework's ``HttpResponse.data``); for a
    download, the file's path."""

    _data: Any = _UNSET

    @property
    def data(self) -> Any:
        if self._data is _UNSET:
            if self.headers.get("content-type", "").startswith("application/json"):
                try:
                    self._data = self.json()
                except ValueError:
                    self._data = self.text
            else:
                self._data = self.text
        return self._data

    @classmethod
    async def read_from(cls, response: httpx.Response) -> HttpResponse:
        """``response`` (sent with ``stream=True``, not read yet) as one, read whole."""
        new = cls(
            response.status_code,
            headers=response.headers,
            stream=response.stream,
            request=response.request,
            extensions=response.extensions,
            history=response.history,
        )
        await new.aread()  # reads and closes the connection's stream
        with contextlib.suppress(RuntimeError):
            new.elapsed = response.elapsed
        return new

    @classmethod
    def saved(cls, response: httpx.Response, where: str) -> HttpResponse:
        """A download's answer: ``response``'s status and headers, ``data`` the path."""
        headers = [
            (k, v) for k, v in response.headers.multi_items() if k.lower() != "content-encoding"
        ]
        new = cls(response.status_code, headers=headers, request=response.request)
        new._data = where
        return new
