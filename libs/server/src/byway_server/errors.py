"""Errors as JSON: ``{"error": "...", "field": "...", "status": N}``.

Every refusal names what was wrong, and the field when one was: a body that does not
validate (FastAPI's 422, reshaped), a missing key (401), a thread of another tenant (404:
whether it exists is not the caller's business), a body over the limit (413).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from byway.errors import BywayError, ConfigurationError

__all__ = ["ApiError", "error_body", "install_error_handlers"]


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
        # the core names the field first: "session_id: expected ..."
        text = str(exc)
        field = text.split(":", 1)[0] if ":" in text and " " not in text.split(":", 1)[0] else ""
        return JSONResponse(error_body(422, text, field), status_code=422)

    @app.exception_handler(BywayError)
    async def _byway(_: Request, exc: BywayError) -> JSONResponse:
        return JSONResponse(error_body(409, str(exc)), status_code=409)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body(exc.status_code, str(exc.detail)), status_code=exc.status_code
        )
