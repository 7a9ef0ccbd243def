"""Request ids and one structured log line per request (never a token or a password)."""

import json
import logging
import re
import time
import uuid
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .limits import BodyStalledError

access_log = logging.getLogger("library_api.access")
error_log = logging.getLogger("library_api.errors")

# A client's id is echoed back and logged, so only a short, plain one is taken as it is.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_headers = dict(scope["headers"])
        sent = request_headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = sent if _SAFE_ID.match(sent) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        authenticated = b"authorization" in request_headers
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                headers["X-Content-Type-Options"] = "nosniff"
                # What a token was needed for stays out of every shared or browser cache.
                json = headers.get("content-type", "").startswith("application/json")
                if authenticated and json and "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            access_log.info(
                json.dumps(
                    {
                        "event": "request",
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        "request_id": request_id,
                    }
                )
            )


class InternalErrorMiddleware:
    """Turns an unhandled exception into the `{detail, code}` 500.

    It sits inside the CORS and request-id layers, so even a 500 carries `X-Request-ID` and
    the CORS headers; Starlette's own last-resort handler sits outside both.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except BodyStalledError:
            raise  # not a fault of ours: LimitsMiddleware answers it 408
        except Exception:
            error_log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if started:
                raise
            body = json.dumps({"detail": "Internal server error", "code": "internal_error"})
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body.encode()})


class JsonCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered in the service's error shape."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in {"content-length", "content-type"}
        }
        return JSONResponse(
            {"detail": bytes(response.body).decode(), "code": "cors_rejected"},
            status_code=response.status_code,
            headers=headers,
        )


class EmptyQueryMiddleware:
    """`?role=&q=` means "no filter": blank parameters are dropped before routing, so every
    optional filter treats them as absent instead of failing validation."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            # latin-1 both ways maps bytes to characters one to one: the rest goes through intact.
            raw = scope["query_string"].decode("latin-1")
            pairs = parse_qsl(raw, keep_blank_values=True, encoding="latin-1")
            kept = [(k, v) for k, v in pairs if v.strip()]
            if len(kept) != len(pairs):
                query = urlencode(kept, encoding="latin-1").encode("latin-1")
                scope = {**scope, "query_string": query}
        await self.app(scope, receive, send)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if message.startswith("{"):
            return message
        entry = {"level": record.levelname.lower(), "logger": record.name, "message": message}
        if record.exc_info:
            trace = self.formatException(record.exc_info)
            entry["error"] = trace.splitlines()[-1]
            entry["traceback"] = trace
        return json.dumps(entry)


def server_log_config(level: str) -> dict[str, object]:
    """Granian's own lines as JSON too; its access log is off (ours has the request id)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": _JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
        "loggers": {
            "_granian": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "granian.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


def configure_logging(level: str) -> None:
    logger = logging.getLogger("library_api")
    if not any(getattr(h, "_library_api", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(_JsonFormatter())
        handler._library_api = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level.upper())
