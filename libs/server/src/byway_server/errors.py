"""Errors as JSON: ``{"error": "...", "field": "...", "status": N}``.

Every refusal names what was wrong, and the field when one was: a body that does not
validate (FastAPI's 422, reshaped), a missing key (401), a thread of another tenant (404:
whether it exists is not the caller's business), a body over the limit (413).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from byway._log import get_logger
from byway.errors import BywayError, ConfigurationError, LimitExceededError

__all__ = ["ApiError", "error_body", "install_error_handlers"]

log = get_logger("byway.server")


class ApiError(Exception):
    """An HTTP error with a message (and the field it is about)."""

    def __init__(self, status: int, message: str, *, field: str = "", **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.extra = extra


def error_body(status: int, message: str, field: str = "", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"error": message, "status": status}
    if field:
        body["field"] = field
    # langgraph-sdk shows `detail` in its exceptions
    body["detail"] = message
    body.update(extra)
    return body


def _field_of(text: str) -> str:
    """The field a core error names first ("session_id: expected ..."), else ''."""
    head, sep, _ = text.partition(":")
    return head if sep and head and " " not in head else ""


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(
            error_body(exc.status, exc.message, exc.field, **exc.extra),
            status_code=exc.status,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        field = _loc(first.get("loc", ()))
        message = f"{field}: {first.get('msg', 'invalid')}" if field else "invalid request"
        problems = [{"field": _loc(e.get("loc", ())), "error": e.get("msg", "")} for e in errors]
        return JSONResponse(error_body(422, message, field, errors=problems), status_code=422)

    @app.exception_handler(ConfigurationError)
    async def _config(_: Request, exc: ConfigurationError) -> JSONResponse:
        return JSONResponse(error_body(422, str(exc), _field_of(str(exc))), status_code=422)

    @app.exception_handler(LimitExceededError)
    async def _limit(_: Request, exc: LimitExceededError) -> JSONResponse:
        return JSONResponse(error_body(413, str(exc), _field_of(str(exc))), status_code=413)

    @app.exception_handler(BywayError)
    async def _byway(_: Request, exc: BywayError) -> JSONResponse:
        return JSONResponse(error_body(409, str(exc), _field_of(str(exc))), status_code=409)

    @app.exception_handler(RedisError)
    async def _redis(_: Request, exc: RedisError) -> JSONResponse:
        if isinstance(exc, RedisConnectionError | RedisTimeoutError):
            log.warning("Redis unavailable: %s", exc)
            return JSONResponse(
                error_body(503, f"Redis unavailable: {type(exc).__name__}"), status_code=503
            )
        log.error("Redis refused a request: %s", exc)
        return JSONResponse(error_body(500, "Redis refused the request"), status_code=500)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises it after this answer, and uvicorn logs the traceback
        return JSONResponse(error_body(500, "internal error"), status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body(exc.status_code, str(exc.detail)), status_code=exc.status_code
        )
