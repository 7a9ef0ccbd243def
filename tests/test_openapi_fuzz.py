"""Schemathesis over every operation of the OpenAPI document, authorised as an admin.

Each operation gets a handful of generated requests (valid and invalid); none may answer 5xx,
and every response must match what the document declares for it (status, content type, schema).
"""

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from library_api.config import Settings
from library_api.main import create_app
from tests.conftest import Account

# The document is a pure function of the code: build it once, without a database.
SPEC: dict[str, Any] = create_app(Settings(_env_file=None, jwt_secret="s" * 40)).openapi()  # type: ignore[call-arg]
SCHEMA = schemathesis.openapi.from_dict(SPEC)
# The event stream never ends, by contract: tests/notifications/test_stream.py reads it from a
# live server.
ENDLESS = {("/api/v1/notifications/stream", "get")}
OPERATIONS = [
    (path, method)
    for path, item in SPEC["paths"].items()
    for method in item
    if (path, method) not in ENDLESS
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 12


def _send(client: TestClient, kwargs: dict[str, Any]) -> Any:
    kwargs = dict(kwargs)
    url = kwargs.pop("url")
    method = kwargs.pop("method")
    data = kwargs.pop("data", None)
    if isinstance(data, str | bytes):
        kwargs["content"] = data
    elif data is not None:
        kwargs["data"] = data
    kwargs.pop("verify", None)
    kwargs.pop("allow_redirects", None)
    kwargs.pop("timeout", None)
    files = kwargs.pop("files", None)
    if files:
        # httpx sends text and bytes parts; schemathesis may generate numbers for extra fields.
        kwargs["files"] = [
            (name, (filename, value if isinstance(value, str | bytes) else str(value), *rest))
            for name, (filename, value, *rest) in files
        ]
    client.cookies.clear()
    client.cookies.update(kwargs.pop("cookies", None) or {})
    response = client.request(method, url, **kwargs)
    # Multipart bodies are streamed; schemathesis reads what was sent when it reports.
    response.request.read()
    return response


@pytest.mark.parametrize(
    ("path", "method"), OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS]
)
def test_operation_honours_its_schema(
    path: str, method: str, client: TestClient, admin: Account
) -> None:
    operation = SCHEMA[path][method.upper()]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=admin.headers)
        response = _send(client, kwargs)
        case.validate_response(response, checks=CHECKS)

    run()
