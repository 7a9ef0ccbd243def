"""One error type for the whole service and the handlers that render it as `{detail, code}`."""

import logging
import math
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pymongo.errors import ConnectionFailure, ExecutionTimeout, WTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("library_api")


class AppError(Exception):
    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers


class ErrorBody(BaseModel):
    detail: str
    code: str


class UnprocessableBody(BaseModel):
    """422: FastAPI's list of validation errors, or one rule's text (`weak_password`, ...)."""

    detail: list[dict[str, Any]] | str
    code: str


def not_found(what: str) -> AppError:
    return AppError(404, "not_found", f"{what} not found")


def unauthorized(detail: str = "Not authenticated", code: str = "not_authenticated") -> AppError:
    return AppError(401, code, detail, {"WWW-Authenticate": "Bearer"})


_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing, invalid or expired credentials",
    403: "The caller's role is too low",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "File too large",
    415: "Unsupported media type",
    416: "Range not satisfiable",
    429: "Too many attempts",
    503: "The database cannot be reached",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer with (422 and 503 always)."""
    entries: dict[int | str, dict[str, Any]] = {
        s: {"model": ErrorBody, "description": _DESCRIPTIONS[s]} for s in (*statuses, 503)
    }
    entries[422] = {"model": UnprocessableBody, "description": "Invalid request"}
    return entries


def _json(
    status: int, detail: object, code: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code}, status_code=status, headers=headers)


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return _json(exc.status, exc.detail, exc.code, exc.headers)


# A 422 shows what was wrong with an input, never the input itself at length: a client sent
# it and has it, and echoing megabytes back would cost as much again.
EXCERPT_CHARS = 80


def _excerpt(value: object) -> object:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        text = repr(value)
        return value if math.isfinite(value) and len(text) <= EXCERPT_CHARS else _cut(text)
    if isinstance(value, str):
        return value if len(value) <= EXCERPT_CHARS else _cut(value)
    if isinstance(value, dict):
        return {_cut(str(k)): _excerpt(v) for k, v in list(value.items())[:10]}
    if isinstance(value, list | tuple):
        return [_excerpt(v) for v in value[:10]]
    return _cut(str(value))


def _cut(text: str) -> str:
    # Lone surrogates cannot be encoded into the answer: replaced, like any other oddity.
    text = text.encode("utf-8", "replace").decode()
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors()[:50]:
        shown = {k: v for k, v in error.items() if k not in ("input", "ctx", "url")}
        shown["msg"] = _cut(str(error.get("msg", "")))
        shown["loc"] = [_excerpt(part) for part in error.get("loc", ())]
        if "input" in error:
            shown["input"] = _excerpt(error["input"])
        if "ctx" in error:
            shown["ctx"] = {k: _excerpt(v) for k, v in error["ctx"].items()}
        errors.append(shown)
    return _json(422, errors, "validation_error")


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    return _json(exc.status_code, str(exc.detail), code, exc.headers)


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("database unavailable during %s %s: %s", request.method, request.url.path, exc)
    return _json(503, "The database cannot be reached; try again shortly", "database_unavailable")


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # ConnectionFailure covers server selection, network and wait-queue time-outs; the other
    # two are what PyMongo's client-side operation timeout (timeoutMS) raises on a slow server.
    for fault in (ConnectionFailure, ExecutionTimeout, WTimeoutError):
        app.add_exception_handler(fault, _database_down)
