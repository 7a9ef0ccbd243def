"""Conventions of the contract that hold for every route."""

import logging
import socket
import time

from starlette.testclient import TestClient

from library_api.db import EmbeddedServer
from tests.conftest import Account


def test_unknown_path_is_a_json_404(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found", "code": "not_found"}


def test_wrong_method_is_a_json_405(client: TestClient) -> None:
    response = client.delete("/health")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_validation_errors_keep_fastapis_shape_and_add_a_code(client: TestClient) -> None:
    response = client.post("/api/v1/auth/register", json={"name": "x"})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert isinstance(body["detail"], list)
    assert {"loc", "msg", "type"} <= set(body["detail"][0])


def test_malformed_json_is_a_validation_error(client: TestClient) -> None:
    response = client.post(
        "/api/v1/auth/register", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    echoed = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    first = client.get("/health").headers["x-request-id"]
    second = client.get("/api/v1/missing").headers["x-request-id"]
    assert first and second and first != second
    unsafe = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"


def test_one_structured_log_line_per_request_without_secrets(
    client: TestClient, member: Account
) -> None:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("library_api.access")
    handler = Collect()
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        client.get("/api/v1/users/me", headers={**member.headers, "X-Request-ID": "trace-me"})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [r.getMessage() for r in records]
    assert len(lines) == 1
    line = lines[0]
    for field in ('"method": "GET"', '"path": "/api/v1/users/me"', '"status": 200', "duration_ms"):
        assert field in line
    assert '"request_id": "trace-me"' in line
    assert member.access_token not in line


def test_cors_allows_listed_origins_only(app_with) -> None:  # type: ignore[no-untyped-def]
    with app_with(cors_origins="https://app.example.org, https://admin.example.org") as other:
        preflight = other.options(
            "/api/v1/users/me",
            headers={
                "Origin": "https://admin.example.org",
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "Authorization, Content-Type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://admin.example.org"
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        simple = other.get("/health", headers={"Origin": "https://app.example.org"})
        assert simple.headers["access-control-allow-origin"] == "https://app.example.org"
        foreign = other.get("/health", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in foreign.headers


def test_docs_work_offline(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "cdn." not in html and "googleapis" not in html and "unpkg" not in html
        for asset in [p.split('"')[0] for p in html.split('src="')[1:]] + [
            p.split('"')[0] for p in html.split('href="')[1:]
        ]:
            if asset.startswith("/"):
                assert client.get(asset).status_code == 200, asset
    assert client.get("/openapi.json").status_code == 200


def test_openapi_declares_errors_and_stable_operation_ids(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    seen: set[str] = set()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            op_id = operation["operationId"]
            assert op_id not in seen, op_id
            seen.add(op_id)
            assert "_api_v1_" not in op_id, f"generated operation id on {method} {path}"
            if path.startswith("/api/v1/"):
                assert "503" in operation["responses"], f"{method} {path}"
    me = spec["paths"]["/api/v1/users/me"]["get"]
    assert "401" in me["responses"]
    assert spec["components"]["securitySchemes"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_database_outage_gives_503_quickly_and_recovers(app_with) -> None:  # type: ignore[no-untyped-def]
    port = _free_port()
    server = EmbeddedServer(":memory:", port=port)
    url = server.start()
    try:
        with app_with(mongodb_url=url, mongodb_timeout_seconds=1) as other:
            assert other.get("/ready").status_code == 200
            server.stop()
            started = time.monotonic()
            ready = other.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["code"] == "database_unavailable"
            login = other.post(
                "/api/v1/auth/login", data={"username": "a@example.com", "password": "whatever1"}
            )
            assert login.status_code == 503
            assert login.json()["code"] == "database_unavailable"
            assert time.monotonic() - started < 10
            server = EmbeddedServer(":memory:", port=port)
            server.start()
            deadline = time.monotonic() + 10
            while other.get("/ready").status_code != 200:
                assert time.monotonic() < deadline, "did not recover"
                time.sleep(0.2)
    finally:
        server.stop()


def test_an_unexpected_error_is_a_json_500_with_request_id_and_cors(app_with) -> None:  # type: ignore[no-untyped-def]
    def add_failing_route(app) -> None:  # type: ignore[no-untyped-def]
        async def explode() -> None:
            raise RuntimeError("boom")

        app.add_api_route("/explode", explode)

    with app_with(prepare=add_failing_route, cors_origins="https://app.example.org") as other:
        response = other.get(
            "/explode", headers={"X-Request-ID": "req-500", "Origin": "https://app.example.org"}
        )
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error", "code": "internal_error"}
    assert response.headers["x-request-id"] == "req-500"
    assert response.headers["access-control-allow-origin"] == "https://app.example.org"
    assert "boom" not in response.text


def test_refused_preflight_is_json(app_with) -> None:  # type: ignore[no-untyped-def]
    with app_with(cors_origins="https://app.example.org") as other:
        response = other.options(
            "/api/v1/books",
            headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"},
        )
    assert response.status_code == 400
    assert response.json()["code"] == "cors_rejected"
    assert "access-control-allow-origin" not in response.headers


def test_blank_filters_mean_no_filter(
    client: TestClient,
    librarian: Account,
    make_account,  # type: ignore[no-untyped-def]
) -> None:
    make_account("member", name="Jérôme Lefèvre")
    everyone = client.get("/api/v1/users", headers=librarian.headers).json()
    blank = client.get("/api/v1/users?q=&role=&page=", headers=librarian.headers)
    assert blank.status_code == 200
    assert blank.json()["total"] == everyone["total"] > 0
    assert client.get("/api/v1/users?role=%20", headers=librarian.headers).status_code == 200
    accented = client.get("/api/v1/users?q=J%C3%A9r%C3%B4me&role=", headers=librarian.headers)
    assert [u["name"] for u in accented.json()["items"]] == ["Jérôme Lefèvre"]
