"""Bounded property-based fuzzing of request heads (raw sockets to `library-api serve`) and
JSON bodies (in process): never a 5xx, never a hang, and every error the service shapes is
`{detail, code}` JSON. Protocol errors the server answers itself have no body (README)."""

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from library_api.config import Settings
from tests.conftest import Account
from tests.hostile.live import Live, exchange, live_server, status_of

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

ROUTES = [
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/books"),
    ("PATCH", "/api/v1/users/me"),
    ("POST", f"/api/v1/books/{'a' * 24}/borrow"),
    ("POST", "/api/v1/users"),
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
specials = st.sampled_from(
    [b"NaN", b"Infinity", b"-Infinity", b"1e400", b'"\\ud800"', b'"\\udc00x"', b"-0", b"1e-400"]
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return json.dumps(draw(json_values)).encode()
    if kind == 1:
        field = draw(st.sampled_from(["name", "email", "refresh_token", "title", "user_id"]))
        return b'{"' + field.encode() + b'": ' + draw(specials) + b"}"
    if kind == 2:
        return draw(st.binary(max_size=200))
    fields = draw(
        st.dictionaries(st.sampled_from(["name", "isbn", "email"]), json_values, max_size=3)
    )
    return json.dumps(fields).encode()


def _service_shaped(response: Any) -> None:
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400:
        body = response.json()
        assert set(body) >= {"detail", "code"}, body


@FUZZ
@given(route=st.sampled_from(ROUTES), body=bodies())
def test_json_bodies_never_get_a_5xx(
    client: TestClient, admin: Account, route: tuple[str, str], body: bytes
) -> None:
    method, path = route
    headers = {**admin.headers, "Content-Type": "application/json"}
    _service_shaped(client.request(method, path, content=body, headers=headers))


@pytest.fixture(scope="module")
def live(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_server(
        settings, tmp_path_factory.mktemp("fuzz"), HEADER_TIMEOUT_SECONDS="2"
    ) as server:
        yield server


HEADER_NAMES = [
    *(b"Content-Length", b"Transfer-Encoding", b"Content-Type", b"Range", b"X-F"),
    *(b"Authorization", b"X-Request-ID", b"Origin", b"Expect", b"Connection"),
]
token = st.text(st.sampled_from("abcxyzABC-_.~!%/?&=:0123456789"), min_size=1, max_size=30)
header_values = st.binary(max_size=300).filter(lambda v: b"\r" not in v and b"\n" not in v)


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "X"]))
    path = "/" + "/".join(draw(st.lists(token, max_size=4)))
    if draw(st.booleans()):
        path = "/api/v1" + draw(st.sampled_from(["/books", "/users/me", "/auth/login", ""]))
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: t"]
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.sampled_from(HEADER_NAMES))
        lines.append(name + b": " + draw(header_values))
    raw = b"\r\n".join(lines) + b"\r\n\r\n"
    return raw + draw(st.binary(max_size=100))


@FUZZ
@given(head=heads())
def test_request_heads_never_get_a_5xx_or_hang(live: Live, head: bytes) -> None:
    started = time.monotonic()
    with live.connect(15) as sock:
        answer = exchange(sock, head)
    # The header timeout (2 s) bounds how long an incomplete request may wait.
    assert time.monotonic() - started < 10
    status = status_of(answer)
    assert status < 500, answer[:400]
    if status >= 400 and b"x-request-id" in answer.lower():
        body = answer.partition(b"\r\n\r\n")[2]
        if body and not answer.lower().count(b"transfer-encoding: chunked"):
            shaped = json.loads(body.split(b"HTTP/1.1 ")[0])
            assert {"detail", "code"} <= set(shaped)
