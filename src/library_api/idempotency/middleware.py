"""`Idempotency-Key` on authenticated POSTs, after the IETF httpapi draft of that name.

One layer for every route, so no route repeats it: the first answer (2xx or 4xx) is kept per
user and key with a fingerprint of the method, path and body; a repeat replays it with
`Idempotent-Replayed: true`; the same key on another request is `422
idempotency_key_reused`; a repeat while the first still runs is `409 request_in_progress`.
5xx answers, cancelled requests and requests whose body the route never read are not kept,
so their retry runs. The body is hashed as the route reads it: nothing is buffered here.
"""

import asyncio
import hashlib
import logging
import re
from typing import Protocol

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..limits import refuse
from ..security import InvalidTokenError
from . import service

logger = logging.getLogger("library_api")

HEADER = "idempotency-key"
# The draft leaves the key's form open; the contract takes 1-255 visible ASCII characters.
_VALID_KEY = re.compile(r"[\x21-\x7e]{1,255}")
# Larger answers are not kept (no POST of this service answers with more).
MAX_KEPT_BODY = 1 << 20
_NOT_KEPT_HEADERS = {"date", "server", "x-request-id", "connection"}


class Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope) if scope["type"] == "http" else None
        if headers is None or scope["method"] != "POST" or HEADER not in headers:
            await self.app(scope, receive, send)
            return
        key = headers[HEADER]
        user_id = self._user(scope, headers.get("authorization", ""))
        if user_id is None:
            # Not an authenticated request: the key means nothing, the route answers as usual.
            await self.app(scope, receive, send)
            return
        if not _VALID_KEY.fullmatch(key):
            await refuse(
                send,
                422,
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
            return
        hours = scope["app"].state.runtime.settings.idempotency_hours
        claim = await service.claim(user_id=user_id, key=key, hours=hours)
        if claim == "running":
            await refuse(
                send,
                409,
                "request_in_progress",
                "A request with this Idempotency-Key is still running; retry shortly",
            )
            return
        digest = _fingerprint(scope)
        if isinstance(claim, service.Replay):
            await self._replay(claim, digest, receive, send)
            return
        await self._run_and_keep(scope, receive, send, user_id=user_id, key=key, digest=digest)

    @staticmethod
    def _user(scope: Scope, authorization: str) -> str | None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        try:
            return str(scope["app"].state.runtime.signer.verify(token.strip()).user_id)
        except InvalidTokenError:
            return None

    async def _replay(
        self, answer: service.Replay, digest: Digest, receive: Receive, send: Send
    ) -> None:
        if not await _read_into(digest, receive) or digest.hexdigest() != answer.fingerprint:
            await refuse(
                send,
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was used for another request",
                close=False,
            )
            return
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
        raw.append((b"idempotent-replayed", b"true"))
        await send({"type": "http.response.start", "status": answer.status, "headers": raw})
        await send({"type": "http.response.body", "body": answer.body})

    async def _run_and_keep(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        user_id: str,
        key: str,
        digest: Digest,
    ) -> None:
        framing = Headers(scope=scope)
        # A request without a body is whole before the route reads anything.
        body_read = "transfer-encoding" not in framing and framing.get("content-length", "0") in (
            "",
            "0",
        )
        status = 0
        kept_headers: list[tuple[str, str]] = []
        chunks: list[bytes] = []
        size = 0

        async def hashing_receive() -> Message:
            nonlocal body_read
            message = await receive()
            if message["type"] == "http.request":
                digest.update(message.get("body", b""))
                body_read = not message.get("more_body", False)
            return message

        async def capturing_send(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
                kept_headers.extend(
                    (k.decode("latin-1"), v.decode("latin-1"))
                    for k, v in message.get("headers", [])
                    if k.decode("latin-1").lower() not in _NOT_KEPT_HEADERS
                )
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                size += len(chunk)
                if size <= MAX_KEPT_BODY:
                    chunks.append(chunk)
            await send(message)

        try:
            await self.app(scope, hashing_receive, capturing_send)
        except BaseException:
            await asyncio.shield(service.release(user_id=user_id, key=key))
            raise
        if body_read and 0 < status < 500 and size <= MAX_KEPT_BODY:
            await service.keep(
                user_id=user_id,
                key=key,
                fingerprint=digest.hexdigest(),
                status=status,
                headers=kept_headers,
                body=b"".join(chunks),
            )
        else:
            await service.release(user_id=user_id, key=key)


def _fingerprint(scope: Scope) -> Digest:
    digest = hashlib.sha256()
    target = scope.get("raw_path") or scope["path"].encode()
    digest.update(scope["method"].encode() + b"\n" + target + b"?" + scope["query_string"] + b"\n")
    return digest


async def _read_into(digest: Digest, receive: Receive) -> bool:
    """Hashes the rest of the body; False when the client went away first."""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return False
        digest.update(message.get("body", b""))
        if not message.get("more_body", False):
            return True
