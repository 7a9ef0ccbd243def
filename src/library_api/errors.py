"""One error type for the whole service and the handlers that render it as `{detail, code}`."""

import logging
import math
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from pydantic.config import JsonValue
from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError, WTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("library_api")


class AppError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: dict[str, str] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers
        # Fields answered beside `detail` and `code` (OAuth2's `error` at login).
        self.extra = extra


class ErrorBody(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"detail": "Book not found", "code": "not_found"}]}
    )

    detail: str
    code: str


VALIDATION_EXAMPLE: list[JsonValue] = [
    {
        "type": "string_too_short",
        "loc": ["body", "password"],
        "msg": "String should have at least 8 characters",
        "input": "short",
        "ctx": {"min_length": 8},
    }
]


class ValidationIssue(BaseModel):
    """One problem of a request, as FastAPI reports it (inputs shown as short excerpts)."""

    model_config = ConfigDict(json_schema_extra={"examples": VALIDATION_EXAMPLE})

    type: str
    loc: list[str | int]
    msg: str
    input: Any = None
    ctx: dict[str, Any] | None = None


def not_found(what: str) -> AppError:
    return AppError(404, "not_found", f"{what} not found")


def unauthorized(detail: str = "Not authenticated", code: str = "not_authenticated") -> AppError:
    return AppError(401, code, detail, {"WWW-Authenticate": "Bearer"})


# Every `code` the service answers with: its status and an example `detail`.
ERROR_CODES: dict[str, tuple[int, str]] = {
    "invalid_password": (400, "The current password is wrong"),
    "invalid_multipart": (400, "The multipart body is malformed"),
    "not_authenticated": (401, "Not authenticated"),
    "invalid_token": (401, "Invalid or expired token"),
    "invalid_credentials": (401, "Incorrect email or password"),
    "forbidden": (403, "This needs the librarian role"),
    "account_disabled": (403, "This account has been deactivated"),
    "not_found": (404, "Book not found"),
    "body_timeout": (408, "The request body stopped arriving"),
    "email_taken": (409, "An account with this email already exists"),
    "last_admin": (409, "The last active admin cannot be demoted or deactivated"),
    "has_active_loans": (409, "Books are still out on this account"),
    "precondition_failed": (412, "The book has changed since the ETag given in If-Match"),
    "isbn_taken": (409, "A book with this ISBN is already catalogued"),
    "copies_in_use": (
        409,
        "total_copies cannot go below the copies on loan or held for reservations",
    ),
    "book_on_loan": (409, "Copies of this book are on loan"),
    "has_overdue_loans": (409, "Return your overdue loans before borrowing more"),
    "already_borrowed": (409, "This book is already on loan to this reader"),
    "loan_limit_reached": (409, "The reader holds the maximum number of active loans"),
    "no_copies_available": (409, "No copy of this book is available"),
    "no_active_loan": (409, "You have no active loan of this book"),
    "already_returned": (409, "This loan has been returned"),
    "renewal_limit_reached": (409, "This loan cannot be renewed again"),
    "loan_overdue": (409, "An overdue loan is renewed only by a librarian"),
    "reserved_by_others": (409, "Other readers are waiting for this book"),
    "copies_available": (409, "A copy is on the shelf: borrow it instead"),
    "already_reserved": (409, "You already have a reservation for this book"),
    "reservation_closed": (409, "This reservation is already fulfilled"),
    "request_in_progress": (
        409,
        "A request with this Idempotency-Key is still running; retry shortly",
    ),
    "fines_outstanding": (409, "Open fines of 500 cents or more must be settled first"),
    "fine_closed": (409, "This fine is already paid or waived"),
    "fine_busy": (409, "The fine is changing; try again"),
    "body_too_large": (413, "The request body is larger than 1048576 bytes"),
    "file_too_large": (413, "The file is larger than the limit of 5242880 bytes"),
    "unsupported_media_type": (
        415,
        "The file's content is not one of: image/jpeg, image/png, image/webp",
    ),
    "range_not_satisfiable": (416, "The requested range is outside the file's 48213 bytes"),
    "validation_error": (422, "(FastAPI's list of problems)"),
    "weak_password": (422, "This password is too common"),
    "invalid_isbn": (
        422,
        "Not a valid ISBN-10 or ISBN-13: The number's checksum or check digit is invalid.",
    ),
    "invalid_csv": (422, "The file is not UTF-8 text"),
    "invalid_csv_header": (
        422,
        "The first row must be the header title,authors,isbn,published_date,genres,total_copies",
    ),
    "invalid_idempotency_key": (422, "Idempotency-Key must be 1 to 255 visible ASCII characters"),
    "idempotency_key_reused": (
        422,
        "This Idempotency-Key was used for another request",
    ),
    "too_many_attempts": (429, "Too many failed attempts for this email; try again later"),
    "too_many_streams": (
        429,
        "Too many notification streams are open; close one or try again later",
    ),
    "header_too_large": (431, "The request head is too large"),
    "database_unavailable": (503, "The database cannot be reached; try again shortly"),
    "shutting_down": (503, "The service is restarting; try again"),
}

# Codes every operation of a kind can answer with, named once.
AUTH = ("not_authenticated", "invalid_token")
STAFF = (*AUTH, "forbidden")
BODY = ("body_too_large", "body_timeout", "validation_error")

_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing, invalid or expired credentials",
    403: "The caller's role is too low",
    404: "Not found (or not yours)",
    408: "The request body stopped arriving",
    409: "Conflicts with the current state",
    413: "Too large",
    412: "The resource has changed since the ETag given in If-Match",
    415: "Unsupported media type",
    416: "Range not satisfiable",
    422: "Invalid request",
    429: "Too many attempts",
    431: "Request head too large",
    503: "The database cannot be reached, or the service is restarting",
}

Code = str | tuple[int, str] | int
# A bare status (the older form of `responses`) stands for these codes, or for every code
# answered with that status: name the codes instead.
_BY_STATUS = {401: AUTH, 403: ("forbidden",), 404: ("not_found",)}


def _names(code: Code) -> list[tuple[int, str]]:
    if isinstance(code, int):
        names = _BY_STATUS.get(code) or [n for n, (s, _) in ERROR_CODES.items() if s == code]
        return [(code, name) for name in names]
    return [code if isinstance(code, tuple) else (ERROR_CODES[code][0], code)]


def error_response(status: int, codes: list[str]) -> dict[str, Any]:
    """One status's OpenAPI response: `code` an enum of `codes`, one example per code."""
    detail: dict[str, Any] = {"type": "string", "description": "What went wrong, for people"}
    if status == 422:
        detail = {
            "anyOf": [
                {"type": "array", "items": {"$ref": "#/components/schemas/ValidationIssue"}},
                {"type": "string"},
            ],
            "description": "The list of problems (`validation_error`), or one rule's text",
        }
    schema = {
        "type": "object",
        "required": ["detail", "code"],
        "properties": {
            "detail": detail,
            "code": {"type": "string", "enum": codes, "description": "Stable, for programs"},
        },
    }
    examples = {}
    for code in codes:
        text: object = VALIDATION_EXAMPLE if code == "validation_error" else ERROR_CODES[code][1]
        examples[code] = {"value": {"detail": text, "code": code}}
    return {
        "description": _DESCRIPTIONS[status],
        "content": {"application/json": {"schema": schema, "examples": examples}},
    }


def responses(*codes: Code) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error codes a route can answer with, grouped by status.

    A code is a name from ERROR_CODES, or `(status, name)` where it is answered with another
    status than usual. The codes every route shares (`431`, `503`, and `408`, `413` and `422`
    where there is a body) are added to the document as a whole (see openapi.py).
    """
    by_status: dict[int, list[str]] = {}
    for code in codes:
        for status, name in _names(code):
            if name not in by_status.setdefault(status, []):
                by_status[status].append(name)
    return {status: error_response(status, names) for status, names in sorted(by_status.items())}


def _json(
    status: int, detail: object, code: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code}, status_code=status, headers=headers)


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    if exc.extra:
        body = {"detail": exc.detail, "code": exc.code, **exc.extra}
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)
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
    if isinstance(exc, PyMongoError) and not isinstance(exc, ConnectionFailure) and not exc.timeout:
        raise exc  # a real fault, answered 500 by the internal-error layer
    logger.warning("database unavailable during %s %s: %s", request.method, request.url.path, exc)
    return _json(503, "The database cannot be reached; try again shortly", "database_unavailable")


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # ConnectionFailure covers server selection, network and wait-queue time-outs; the other
    # two are what PyMongo's client-side operation timeout (timeoutMS) raises on a slow server.
    # Any PyMongo error that is a time-out (a bulk write's included) is the database's fault.
    for fault in (ConnectionFailure, ExecutionTimeout, WTimeoutError, PyMongoError):
        app.add_exception_handler(fault, _database_down)
