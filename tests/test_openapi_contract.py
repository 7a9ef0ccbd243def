"""The OpenAPI document as client generators and Swagger read it.

`tests/openapi.json` is the committed document: a change to the contract shows up in review.
Refresh it with `make openapi-snapshot` after a deliberate change.
"""

import json
import os
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from library_api.config import Settings
from library_api.errors import ERROR_CODES
from library_api.main import create_app
from tests.conftest import Account

SNAPSHOT = Path(__file__).with_name("openapi.json")
SPEC: dict[str, Any] = create_app(Settings(_env_file=None, jwt_secret="s" * 40)).openapi()  # type: ignore[call-arg]
PUBLIC = {
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("get", "/api/v1/books/{book_id}/cover"),
    ("get", "/health"),
    ("get", "/ready"),
}


def render(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, ensure_ascii=False) + "\n"


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, item in SPEC["paths"].items() for m, op in item.items()]


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    resolved: dict[str, Any] = SPEC["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return resolved


def test_the_document_matches_the_committed_snapshot() -> None:
    if os.environ.get("UPDATE_OPENAPI_SNAPSHOT"):
        SNAPSHOT.write_text(render(SPEC))
    assert SNAPSHOT.read_text() == render(SPEC), (
        "the OpenAPI document changed: review the change, then run `make openapi-snapshot`"
    )


def test_metadata_servers_license_contact() -> None:
    assert SPEC["servers"][0]["url"] == "/"
    assert SPEC["info"]["license"]["identifier"] == "MIT"
    assert "@" in SPEC["info"]["contact"]["email"]


def test_public_routes_declare_no_security_and_the_rest_need_a_token() -> None:
    for method, path, operation in _operations():
        if (method, path) in PUBLIC:
            assert operation["security"] == [], f"{method} {path}"
        else:
            assert operation["security"] == [{"OAuth2PasswordBearer": []}], f"{method} {path}"
            assert "not_authenticated" in _codes(operation, "401"), f"{method} {path}"


def _response(operation: dict[str, Any], status: str) -> dict[str, Any]:
    response: dict[str, Any] = operation["responses"][status]
    if "$ref" in response:
        response = SPEC["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    return response


def _codes(operation: dict[str, Any], status: str) -> list[str]:
    content = _response(operation, status)["content"]["application/json"]
    codes: list[str] = content["schema"]["properties"]["code"]["enum"]
    assert sorted(content["examples"]) == sorted(codes), "one example per code"
    return codes


def test_every_error_response_lists_its_codes() -> None:
    for method, path, operation in _operations():
        for status in operation["responses"]:
            if int(status) < 400:
                continue
            codes = _codes(operation, status)
            assert codes, f"{method} {path} {status}"
            for code in codes:
                assert ERROR_CODES[code][0] == int(status) or code == "account_disabled", code
        assert "shutting_down" in _codes(operation, "503")
        assert "header_too_large" in _codes(operation, "431")
        if "requestBody" in operation:
            assert "validation_error" in _codes(operation, "422"), f"{method} {path}"
            assert "body_timeout" in _codes(operation, "408"), f"{method} {path}"


def test_borrow_lists_its_conflicts_and_a_prefilled_empty_body() -> None:
    borrow = SPEC["paths"]["/api/v1/books/{book_id}/borrow"]["post"]
    assert set(_codes(borrow, "409")) >= {
        "has_overdue_loans",
        "already_borrowed",
        "loan_limit_reached",
        "no_copies_available",
        "account_disabled",
    }
    body = borrow["requestBody"]
    assert not body.get("required")
    media = body["content"]["application/json"]
    assert media["schema"] == {"$ref": "#/components/schemas/BorrowRequest"}
    assert next(iter(media["examples"].values()))["value"] == {}


def test_no_optional_parameter_is_nullable_and_no_summary_has_backticks() -> None:
    for method, path, operation in _operations():
        assert "`" not in operation["summary"], f"{method} {path}"
        for parameter in operation.get("parameters", []):
            assert "anyOf" not in parameter["schema"], f"{method} {path} {parameter['name']}"


def test_every_json_schema_of_a_body_or_answer_has_an_example() -> None:
    for method, path, operation in _operations():
        # Not multipart: a file has no example to show.
        media = [
            m
            for t, m in operation.get("requestBody", {}).get("content", {}).items()
            if t.endswith(("json", "x-www-form-urlencoded"))
        ]
        for status in operation["responses"]:
            content = _response(operation, status).get("content", {})
            media += [m for t, m in content.items() if t.endswith("json")]
        for m in media:
            has = "examples" in m or "example" in m or "examples" in _resolve(m["schema"])
            assert has, f"{method} {path}"
    assert "additionalProp1" not in json.dumps(SPEC)


def test_files_are_binary_with_their_headers() -> None:
    cover = SPEC["paths"]["/api/v1/books/{book_id}/cover"]["get"]["responses"]["200"]
    assert set(cover["content"]) == {"image/jpeg", "image/png", "image/webp"}
    assert cover["content"]["image/png"]["schema"] == {"type": "string", "format": "binary"}
    assert {"ETag", "Cache-Control", "X-Request-ID"} <= set(cover["headers"])
    document = SPEC["paths"]["/api/v1/books/{book_id}/document"]["get"]["responses"]
    assert document["200"]["content"]["application/pdf"]["schema"]["format"] == "binary"
    assert {"ETag", "Accept-Ranges"} <= set(document["200"]["headers"])
    assert "Content-Range" in document["206"]["headers"]
    assert "Content-Range" in document["416"]["headers"]
    login = SPEC["paths"]["/api/v1/auth/login"]["post"]
    assert "Retry-After" in _response(login, "429")["headers"]


def test_login_failures_carry_oauth2_error_fields(client: TestClient, member: Account) -> None:
    wrong = client.post(
        "/api/v1/auth/login", data={"username": member.email, "password": "not the password"}
    )
    assert wrong.status_code == 401
    assert wrong.json() == {
        "detail": "Incorrect email or password",
        "code": "invalid_credentials",
        "error": "invalid_grant",
        "error_description": "Incorrect email or password",
    }


def _example(schema_name: str) -> Any:
    return SPEC["components"]["schemas"][schema_name]["examples"][0]


def test_the_examples_succeed_as_they_stand(
    client: TestClient, admin: Account, librarian: Account
) -> None:
    """What Swagger's "Try it out" sends unchanged, with the right role, is accepted."""
    registered = client.post("/api/v1/auth/register", json=_example("UserRegister"))
    assert registered.status_code == 201, registered.text
    form = SPEC["components"]["schemas"]["Body_login"]["properties"]
    tokens = client.post(
        "/api/v1/auth/login",
        data={
            "username": form["username"]["examples"][0],
            "password": form["password"]["examples"][0],
        },
    )
    assert tokens.status_code == 200, tokens.text
    reader = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    book = client.post("/api/v1/books", json=_example("BookCreate"), headers=librarian.headers)
    assert book.status_code == 201, book.text
    book_id = book.json()["id"]
    borrow = SPEC["paths"]["/api/v1/books/{book_id}/borrow"]["post"]["requestBody"]
    body = next(iter(borrow["content"]["application/json"]["examples"].values()))["value"]
    loan = client.post(f"/api/v1/books/{book_id}/borrow", json=body, headers=reader)
    assert loan.status_code == 201, loan.text
    patched = client.patch(
        f"/api/v1/books/{book_id}", json=_example("BookUpdate"), headers=librarian.headers
    )
    assert patched.status_code == 200, patched.text
    me = client.patch("/api/v1/users/me", json=_example("UserSelfUpdate"), headers=reader)
    assert me.status_code == 200, me.text
    created = client.post("/api/v1/users", json=_example("UserCreate"), headers=admin.headers)
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    changed = client.patch(
        f"/api/v1/users/{user_id}", json=_example("UserAdminUpdate"), headers=admin.headers
    )
    assert changed.status_code == 200, changed.text
    password = client.post(
        "/api/v1/users/me/password", json=_example("PasswordChange"), headers=reader
    )
    assert password.status_code == 204, password.text


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_nothing_from_elsewhere(client: TestClient, page: str) -> None:
    html = client.get(page).text
    scripts = [p.split('"')[0] for p in html.split('src="')[1:]]
    for script in scripts:
        assert script.startswith("/"), script
        body = client.get(script).text
        assert "https://cdn." not in body, f"{script} loads from a CDN"
