"""An HTTP client that calls a service by name: each request goes to a live instance
found by a :class:`~byway.discovery_client.DiscoveryClient`, and on a connection error, a
timeout or a retryable status (5xx, 429) it goes to the next instance, a bounded number
of times, reporting the failure so a failing instance leaves the rotation.

Needs httpx (``pip install "byway[discovery]"``); this module imports without it, and
the client raises :class:`ImportError` naming that command when first used.

Errors (under :class:`~byway.errors.BywayError`)::

    HttpClientError               status_code, response_body
    ├── HttpRequestError          a request failed (the instance could not be reached)
    └── DiscoveryHttpClientError  no live instance, or every attempt failed
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from byway.discovery import DEFAULT_HEALTH_THRESHOLD_MS, NO_HEALTH_CHECK, ServiceInstance
from byway.discovery_client import STRATEGIES, DiscoveryClient, log
from byway.errors import BywayError, ConfigurationError

if TYPE_CHECKING:
    import httpx

    from byway._http_response import HttpResponse

__all__ = [
    "INSTALL_HINT",
    "DiscoveryHttpClient",
    "DiscoveryHttpClientError",
    "HttpClientError",
    "HttpRequestError",
    "RetryConfig",
]

INSTALL_HINT = 'pip install "byway[discovery]"'
#: methods retried after the request may have reached the server (not POST, PATCH)
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


class HttpClientError(BywayError):
    """An HTTP call failed; ``status_code`` and ``response_body`` when there was an answer."""

    def __init__(
        self, message: str, *, status_code: int | None = None, response_body: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response_body = response_body


class HttpRequestError(HttpClientError):
    """The request got no answer (connection refused or reset, timeout)."""


class DiscoveryHttpClientError(HttpClientError):
    """No live instance of the service, or every attempt failed."""


@dataclass
class RetryConfig:
    """How many instances a request tries (``max_attempts``, the first included), the
    pause between attempts (exponential), and which statuses count as failures."""

    max_attempts: int = 3
    initial_delay: float = 0.5
    max_delay: float = 30.0
    backoff_multiplier: float = 2.0
    retry_on_status_codes: frozenset[int] = frozenset({429, 500, 502, 503, 504})

    @classmethod
    def no_retry(cls) -> RetryConfig:
        """One attempt, no status retried."""
        return cls(max_attempts=1, retry_on_status_codes=frozenset())

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return max(
            0.0, min(self.initial_delay * self.backoff_multiplier ** (attempt - 1), self.max_delay)
        )


def require_httpx() -> None:
    """Raise :class:`ImportError` naming the install command when httpx is missing."""
    try:
        import httpx  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"DiscoveryHttpClient needs httpx: {INSTALL_HINT}") from exc


class DiscoveryHttpClient:
    """HTTP client over service discovery (by-framework's ``DiscoveryHttpClient``).

    Requests name a service and a path; the answer is an ``httpx.Response`` (with
    by-framework's ``data`` too). ``http_client`` is an ``httpx.AsyncClient`` to send with
    (default: one of its own, ``timeout`` seconds, closed on exit); ``strategy`` picks the
    instance (``round-robin`` or ``random``). Use it as an async context manager.
    """

    def __init__(
        self,
        discovery_client: DiscoveryClient,
        *,
        http_client: httpx.AsyncClient | None = None,
        retry_config: RetryConfig | None = None,
        health_threshold_ms: int = DEFAULT_HEALTH_THRESHOLD_MS,
        strategy: str = "round-robin",
        timeout: float = 30.0,
    ) -> None:
        require_httpx()
        self.discovery_client = discovery_client
        self.retry_config = retry_config or RetryConfig()
        if isinstance(self.retry_config.max_attempts, bool) or self.retry_config.max_attempts < 1:
            raise ConfigurationError(
                f"retry_config.max_attempts: expected >= 1, got {self.retry_config.max_attempts!r}"
            )
        if strategy.replace("_", "-") not in STRATEGIES:
            raise ConfigurationError(f"strategy: expected one of {STRATEGIES}, got {strategy!r}")
        self.strategy = strategy
        ok = health_threshold_ms > 0 or health_threshold_ms == NO_HEALTH_CHECK
        self.health_threshold_ms = health_threshold_ms if ok else DEFAULT_HEALTH_THRESHOLD_MS
        self.timeout = timeout
        self._owns_http_client = http_client is None
        self._http_client = http_client

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The ``httpx.AsyncClient`` requests go through (created on first use)."""
        if self._http_client is None:
            import httpx

            self._http_client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        return self._http_client

    async def aclose(self) -> None:
        """Close the HTTP client if this one created it."""
        client, self._http_client = self._http_client, None
        if client is not None and self._owns_http_client:
            await client.aclose()
        elif client is not None:
            self._http_client = client

    async def __aenter__(self) -> DiscoveryHttpClient:
        _ = self.http_client
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- by-framework's methods ------------------------------------------------------------

    async def get(
        self,
        service_name: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> HttpResponse:
        return await self.request("GET", service_name, path, headers=headers, params=params)

    async def post(
        self,
        service_name: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
    ) -> HttpResponse:
        return await self.request("POST", service_name, path, headers=headers, json=json, data=data)

    async def put(
        self,
        service_name: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
    ) -> HttpResponse:
        return await self.request("PUT", service_name, path, headers=headers, json=json, data=data)

    async def patch(
        self,
        service_name: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
    ) -> HttpResponse:
        return await self.request(
            "PATCH", service_name, path, headers=headers, json=json, data=data
        )

    async def delete(
        self,
        service_name: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> HttpResponse:
        return await self.request("DELETE", service_name, path, headers=headers, params=params)

    async def download(
        self,
        service_name: str,
        path: str,
        destination: str | Path,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        retry_count: int = 0,
    ) -> HttpResponse:
        """GET ``path`` into the file ``destination`` (written whole or not at all);
        the answer's ``data`` is the file's path. ``retry_count``: attempts already used."""
        return await self.request(
            "GET", service_name, path, headers=headers, params=params,
            _sink=Path(destination), _used=retry_count,
        )  # fmt: skip

    async def upload(
        self,
        service_name: str,
        path: str,
        file_path: str | Path,
        *,
        file_field: str = "file",
        headers: Mapping[str, str] | None = None,
        form_fields: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """POST the file at ``file_path`` as multipart/form-data (field ``file_field``)."""
        return await self.upload_multiple(
            service_name, path, [file_path], file_field=file_field, headers=headers,
            form_fields=form_fields,
        )  # fmt: skip

    async def upload_multiple(
        self,
        service_name: str,
        path: str,
        file_paths: list[str | Path],
        *,
        file_field: str = "file",
        headers: Mapping[str, str] | None = None,
        form_fields: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """POST several files as multipart/form-data, each under ``file_field``."""
        files = []
        for item in file_paths:
            where = Path(item)
            content = await asyncio.to_thread(where.read_bytes)
            kind = mimetypes.guess_type(where.name)[0] or "application/octet-stream"
            files.append((file_field, (where.name, content, kind)))
        return await self.request(
            "POST", service_name, path, headers=headers, data=form_fields, files=files
        )

    async def upload_with_stream(
        self,
        service_name: str,
        path: str,
        file_name: str,
        content: bytes,
        *,
        file_field: str = "file",
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        form_fields: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """POST ``content`` as a file named ``file_name`` (multipart/form-data)."""
        part = (file_name, content, content_type or "application/octet-stream")
        return await self.request(
            "POST", service_name, path, headers=headers, data=form_fields,
            files=[(file_field, part)],
        )  # fmt: skip

    # -- the request -----------------------------------------------------------------------

    async def request(
        self,
        method: str,
        service_name: str,
        path: str,
        *,
        _sink: Path | None = None,
        _used: int = 0,
        **kwargs: Any,
    ) -> HttpResponse:
        """Send ``method path`` to an instance of ``service_name``, trying the next
        instance on failure. ``kwargs`` go to ``httpx.AsyncClient.build_request``
        (``headers``, ``params``, ``json``, ``data``, ``files``, ``content``, ``timeout``).
        POST and PATCH go to another instance only when the failed one cannot have
        received them (refused connection, connect timeout) or answered a retryable
        status."""
        import httpx

        method = method.upper()
        attempts = max(1, self.retry_config.max_attempts - max(0, _used))
        tried: set[str] = set()
        failure = ""
        last: httpx.Response | None = None
        for attempt in range(1, attempts + 1):
            instance = await self._pick(service_name, tried)
            tried.add(instance.id)
            url = _url(instance, path)
            try:
                request = self.http_client.build_request(method, url, **kwargs)
                response = await self.http_client.send(request, stream=True)
            except httpx.TransportError as exc:
                self.discovery_client.mark_failure(service_name, instance.id)
                failure = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "%s %s (%s) attempt %d: %s", method, service_name, instance.id, attempt, failure
                )
                unsent = isinstance(
                    exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
                )
                if not unsent and method not in IDEMPOTENT:
                    raise HttpRequestError(
                        f"{method} {service_name}{path}: {failure} (not retried)"
                    ) from exc
                last = None
            else:
                if response.status_code not in self.retry_config.retry_on_status_codes:
                    self.discovery_client.mark_success(service_name, instance.id)
                    return await self._finish(response, _sink)
                self.discovery_client.mark_failure(service_name, instance.id)
                last = await _read(response)
                failure = f"status {last.status_code}"
                log.warning(
                    "%s %s (%s) attempt %d: %s", method, service_name, instance.id, attempt, failure
                )
            if attempt < attempts:
                await asyncio.sleep(self.retry_config.delay(attempt))
        raise DiscoveryHttpClientError(
            f"{method} {service_name}{path} failed after {attempts} attempts: {failure}",
            status_code=last.status_code if last is not None else None,
            response_body=last.text[:2000] if last is not None else None,
        )

    async def _pick(self, service_name: str, tried: set[str]) -> ServiceInstance:
        """A live instance not tried yet in this request (any live one once all were);
        one registered without a port (0) is no HTTP server."""
        portless: set[str] = set()
        for exclude in (tried, set()):
            while instance := await self.discovery_client.discover(
                service_name, self.strategy, self.health_threshold_ms, exclude=exclude | portless
            ):
                if instance.port > 0:
                    return instance
                portless.add(instance.id)
        raise DiscoveryHttpClientError(f"No available instances for service: {service_name}")

    async def _finish(self, response: httpx.Response, sink: Path | None) -> HttpResponse:
        from byway._http_response import HttpResponse

        if sink is None or not response.is_success:
            return await HttpResponse.read_from(response)
        part = sink.with_name(sink.name + ".part")
        try:
            await asyncio.to_thread(sink.parent.mkdir, parents=True, exist_ok=True)
            handle = await asyncio.to_thread(part.open, "wb")
            try:
                async for chunk in response.aiter_bytes():
                    await asyncio.to_thread(handle.write, chunk)
            finally:
                await asyncio.to_thread(handle.close)
            await asyncio.to_thread(os.replace, part, sink)
        except BaseException:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(part.unlink)
            raise
        finally:
            await response.aclose()
        return HttpResponse.saved(response, str(sink))


async def _read(response: httpx.Response) -> httpx.Response:
    await response.aread()
    return response


def _url(instance: ServiceInstance, path: str) -> httpx.URL:
    """The URL of ``path`` (and its query) on ``instance``: built from parts, so a path
    can never name another host or scheme."""
    import httpx

    relative = httpx.URL(path)
    if relative.scheme or relative.host or relative.netloc or path.startswith("//"):
        raise ConfigurationError(f"path: expected a path on the service, got {path!r:.80}")
    segments = [s for s in ((instance.path_prefix or "").strip("/"), relative.path.strip("/")) if s]
    full = "/" + "/".join(segments)
    if relative.path.endswith("/") and full != "/":
        full += "/"
    return httpx.URL(
        scheme=instance.protocol,
        host=instance.host,
        port=instance.port,
        path=full,
        query=relative.query,
    )
