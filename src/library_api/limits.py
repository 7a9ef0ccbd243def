"""What the app refuses before a route runs: oversized heads and bodies, stalled bodies and
JSON that Python would parse but no JSON client meant (NaN, 1e400, lone surrogates).

The HTTP server bounds what it reads of a head (see server.py); this layer applies the
configured `MAX_HEADER_BYTES` below that bound, and `MAX_BODY_BYTES` to every body but an
upload's (uploads stream to storage under their own limits). A refusal is sent before the
app sees the request, so a refused request has not run. An answer sent before its request's
body was read says `Connection: close`: the server then drops the rest instead of reading
and discarding it.
"""

import asyncio
import json
import logging
import re
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("library_api")

# The routes whose bodies are files, streamed under MAX_COVER_BYTES, MAX_DOCUMENT_BYTES and
# MAX_IMPORT_BYTES rather than held in memory.
UPLOADS = re.compile(r"/api/v1/books/(?:[^/]+/(?:cover|document)|import)")
# Request line framing ("GET  HTTP/1.1\r\n") and each header's ": " and "\r\n".
_LINE_OVERHEAD = 16
_HEADER_OVERHEAD = 4
_DIGITS = re.compile(r"[0-9]+")
_JSON_TYPE = re.compile(r"application/(?:[\w.+-]*\+)?json\b", re.IGNORECASE)


class BodyStalledError(Exception):
    """The client stopped sending a body it had announced."""


class _BodyTooLargeError(Exception):
    pass


def head_size(scope: Scope) -> int:
    target = len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"])
    headers = sum(len(k) + len(v) + _HEADER_OVERHEAD for k, v in scope["headers"])
    return len(scope["method"]) + target + _LINE_OVERHEAD + headers


def _strict_json_error(body: bytes) -> str | None:
    """Why `body` is not JSON that every client would read the same way, or None."""

    def constant(name: str) -> float:
        raise ValueError(f"{name} is not JSON")

    def finite(text: str) -> float:
        number = float(text)
        if number in (float("inf"), float("-inf")):
            raise ValueError(f"{text[:20]} is out of range")
        return number

    try:
        value = json.loads(body, parse_constant=constant, parse_float=finite)
        _check_strings(value)
    except RecursionError:
        return "JSON nested too deeply"
    except UnicodeError:
        return "JSON text with invalid UTF-8 or a lone surrogate"
    except ValueError as exc:
        return f"JSON decode error: {str(exc)[:120]}"
    return None


def _check_strings(value: Any) -> None:
    # A lone surrogate ("\ud800") decodes to a str that can be neither stored nor sent back.
    if isinstance(value, str):
        value.encode()
    elif isinstance(value, dict):
        for key, item in value.items():
            key.encode()
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


async def refuse(send: Send, status: int, code: str, detail: object, *, close: bool = True) -> None:
    headers = [(b"content-type", b"application/json")]
    if close:
        headers.append((b"connection", b"close"))
    body = json.dumps({"detail": detail, "code": code}).encode()
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class LimitsMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_header_bytes: int, max_body_bytes: int, body_timeout: float
    ) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = f"{scope['method']} {scope['path'][:200]}"
        if head_size(scope) > self.max_header_bytes:
            logger.warning("refused %s: request head over %d bytes", where, self.max_header_bytes)
            await refuse(send, 431, "header_too_large", "The request head is too large")
            return
        headers = Headers(scope=scope)
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = _declared_length(headers.get("content-length", ""))
        body_done = not chunked and not length
        started = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout(self.body_timeout):
                    message = await receive()
            except TimeoutError:
                raise BodyStalledError from None
            body_done = message["type"] != "http.request" or not message.get("more_body")
            return message

        async def closing_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if not body_done:
                    MutableHeaders(scope=message)["Connection"] = "close"
            await send(message)

        app_receive: Receive = timed_receive
        try:
            if not body_done and not UPLOADS.fullmatch(scope["path"]):
                if length is not None and length > self.max_body_bytes:
                    raise _BodyTooLargeError
                body = await self._read(timed_receive)
                if body is None:
                    return  # the client went away
                problem = (
                    _strict_json_error(body)
                    if body and _JSON_TYPE.match(headers.get("content-type", ""))
                    else None
                )
                if problem is not None:
                    logger.warning("refused %s: %s", where, problem)
                    await refuse(send, 422, "validation_error", _json_detail(problem), close=False)
                    return
                app_receive = _replay(body, receive)
            await self.app(scope, app_receive, closing_send)
        except _BodyTooLargeError:
            logger.warning("refused %s: body over %d bytes", where, self.max_body_bytes)
            await refuse(
                send,
                413,
                "body_too_large",
                f"The request body is larger than {self.max_body_bytes} bytes",
            )
        except BodyStalledError:
            logger.warning("refused %s: no body data for %g s", where, self.body_timeout)
            if started:
                raise
            await refuse(send, 408, "body_timeout", "The request body stopped arriving")

    async def _read(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _BodyTooLargeError
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)


def _declared_length(value: str) -> int | None:
    if not _DIGITS.fullmatch(value):
        return None
    digits = value.lstrip("0") or "0"
    # Past 18 digits it is over any limit; int() of thousands of them is refused by Python.
    return int(digits) if len(digits) <= 18 else 10**18


def _json_detail(problem: str) -> list[dict[str, Any]]:
    # FastAPI's own shape for a body it cannot parse, so clients handle both alike.
    return [{"type": "json_invalid", "loc": ["body"], "msg": problem, "input": None}]


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
