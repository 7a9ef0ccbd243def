"""The OpenAPI document: FastAPI's, finished with what holds for every operation.

Routes declare their own error codes (`errors.responses`); this adds the ones every route
shares, the response headers every answer carries, `security: []` on public routes, and
turns `anyOf: [X, null]` on an optional parameter or body into plain `X` (leaving it out is
how a client says "none"), so generated clients and Swagger do not show `X | (X | null)`.
"""

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from .errors import ERROR_CODES, ValidationIssue, error_response

Spec = dict[str, Any]

_HEADERS: dict[str, Spec] = {
    "X-Request-ID": {
        "description": "The client's own `X-Request-ID` when it is 1-128 characters of "
        "letters, digits and `._:-`, else a new unique id; also in the service's log line",
        "schema": {"type": "string", "maxLength": 128},
        "example": "3f9c2a7be0d14c8fa1e26b5d7c90e431",
    },
    "WWW-Authenticate": {
        "description": "Always `Bearer`",
        "schema": {"type": "string"},
        "example": "Bearer",
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 0},
        "example": 840,
    },
    "Cache-Control-No-Store": {
        "description": "`no-store`: an answer a token was needed for stays out of every cache",
        "schema": {"type": "string"},
        "example": "no-store",
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the kept answer to an earlier request with the "
        "same `Idempotency-Key`",
        "schema": {"type": "string", "enum": ["true"]},
        "example": "true",
    },
}

_IDEMPOTENCY_KEY: Spec = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "1-255 visible ASCII characters, such as a new UUID per request. A repeat "
    "with the same key, method, path and body within `IDEMPOTENCY_HOURS` gets the first answer "
    "again (`Idempotent-Replayed: true`) instead of running twice.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    # No example: Swagger would send it with every "Try it out", and the second different
    # request would be refused as a reused key.
}

_FORM = "application/x-www-form-urlencoded"
_METHODS = ("get", "put", "post", "delete", "patch")


def _header_ref(name: str) -> Spec:
    return {"$ref": f"#/components/headers/{name}"}


def add_codes(operation: Spec, status: int, codes: list[str]) -> None:
    """Adds error codes to one status of an operation, keeping those already declared."""
    responses = operation.setdefault("responses", {})
    existing = responses.get(str(status))
    known: list[str] = []
    if existing is not None:
        schema = existing.get("content", {}).get("application/json", {}).get("schema", {})
        known = list(schema.get("properties", {}).get("code", {}).get("enum", []))
    merged = known + [c for c in codes if c not in known]
    if existing is not None and merged == known:
        return
    entry = error_response(status, merged)
    if existing is not None:
        entry["description"] = existing.get("description") or entry["description"]
        if "headers" in existing:
            entry["headers"] = existing["headers"]
    responses[str(status)] = entry


def _without_null(schema: Spec) -> Spec:
    """`anyOf: [X, {type: null}]` as X, keeping the title, description and default."""
    options = schema.get("anyOf")
    if not isinstance(options, list):
        return schema
    kept = [o for o in options if o != {"type": "null"}]
    if len(kept) != 1 or len(kept) == len(options):
        return schema
    collapsed = {**kept[0], **{k: v for k, v in schema.items() if k != "anyOf"}}
    if "$ref" in collapsed:
        collapsed.pop("title", None)
    if collapsed.get("default", 0) is None:
        del collapsed["default"]
    return collapsed


def _shared_codes(path: str, method: str, operation: Spec) -> None:
    default = operation["responses"].get("422", {}).get("content", {}).get("application/json")
    if default and default["schema"].get("$ref", "").endswith("/HTTPValidationError"):
        # FastAPI's own 422, declared for any parameter; ours is added below where one can
        # fail (a query parameter or a body: path and header parameters are plain strings).
        del operation["responses"]["422"]
    body = operation.get("requestBody")
    secured = bool(operation.get("security"))
    if body is not None:
        multipart = "multipart/form-data" in body.get("content", {})
        # Uploads stream under their own limits (file_too_large), other bodies under MAX_BODY_BYTES.
        add_codes(operation, 408, ["body_timeout"])
        if not multipart:
            add_codes(operation, 413, ["body_too_large"])
    queries = [p for p in operation.get("parameters", []) if p.get("in") == "query"]
    if body is not None or queries:
        add_codes(operation, 422, ["validation_error"])
    if method == "post" and secured:
        add_codes(operation, 409, ["request_in_progress"])
        add_codes(operation, 422, ["invalid_idempotency_key", "idempotency_key_reused"])
        operation.setdefault("parameters", []).append(copy.deepcopy(_IDEMPOTENCY_KEY))
    add_codes(operation, 431, ["header_too_large"])
    # Only /health answers without the database.
    unavailable = (
        ["shutting_down"] if path == "/health" else ["database_unavailable", "shutting_down"]
    )
    add_codes(operation, 503, unavailable)


def _headers(method: str, operation: Spec) -> None:
    secured = bool(operation.get("security"))
    for status, response in operation["responses"].items():
        headers = response.setdefault("headers", {})
        headers.setdefault("X-Request-ID", _header_ref("X-Request-ID"))
        if status == "401":
            headers.setdefault("WWW-Authenticate", _header_ref("WWW-Authenticate"))
        if status == "429":
            headers.setdefault("Retry-After", _header_ref("Retry-After"))
        json = "application/json" in response.get("content", {})
        if secured and json and status.startswith("2"):
            headers.setdefault("Cache-Control", _header_ref("Cache-Control-No-Store"))
        if method == "post" and secured and int(status) < 500:
            headers.setdefault("Idempotent-Replayed", _header_ref("Idempotent-Replayed"))


def _models(root: type[BaseModel] = BaseModel) -> Iterator[type[BaseModel]]:
    for model in root.__subclasses__():
        if model.__module__.startswith("library_api."):
            yield model
        yield from _models(model)


def _restore_examples(schemas: Spec) -> None:
    """The models' examples as written: FastAPI drops every `null` from the document."""
    for model in _models():
        extra = model.model_config.get("json_schema_extra")
        if not isinstance(extra, dict) or "examples" not in extra:
            continue
        for name in (model.__name__, f"{model.__name__}-Input", f"{model.__name__}-Output"):
            if name in schemas:
                schemas[name]["examples"] = copy.deepcopy(extra["examples"])


def _page_examples(schemas: Spec) -> None:
    """A page's example: one item, from the item schema's own example."""
    for name, schema in schemas.items():
        if not name.startswith("Page_") or "examples" in schema:
            continue
        item_ref = schema["properties"]["items"]["items"].get("$ref", "")
        item = schemas.get(item_ref.rsplit("/", 1)[-1], {})
        examples = item.get("examples")
        if examples:
            schema["examples"] = [{"items": examples[:1], "total": 1, "page": 1, "page_size": 20}]


_FORM_EXAMPLES = {"username": "ada.lovelace@example.com", "password": "analytical engine 1843"}


def _form_fields(operation: Spec, schemas: Spec) -> None:
    """A form field cannot be null: optional ones are plain strings, left out when unused."""
    form = operation.get("requestBody", {}).get("content", {}).get(_FORM)
    if form is None:
        return
    name = form["schema"].get("$ref", "").rsplit("/", 1)[-1]
    for field, schema in schemas.get(name, {}).get("properties", {}).items():
        schema.update(_without_null(schema))
        schema.pop("anyOf", None)
        if field in _FORM_EXAMPLES:
            schema["examples"] = [_FORM_EXAMPLES[field]]
    if name in schemas:
        schemas[name]["examples"] = [_FORM_EXAMPLES]


def _shared_examples(spec: Spec) -> None:
    """Each code's example once, in `components/examples`, referred to where it is used."""
    shared = spec["components"].setdefault("examples", {})
    for item in spec["paths"].values():
        for operation in item.values():
            for response in operation["responses"].values():
                examples = response.get("content", {}).get("application/json", {}).get("examples")
                for code, example in (examples or {}).items():
                    if "value" not in example or example["value"].get("code") != code:
                        continue
                    standard = error_response(ERROR_CODES[code][0], [code])
                    standard_value = standard["content"]["application/json"]["examples"][code]
                    if example["value"] != standard_value["value"]:
                        continue  # a status or fields of its own (login's OAuth2 error)
                    shared[code] = {"summary": code, **standard_value}
                    examples[code] = {"$ref": f"#/components/examples/{code}"}
    spec["components"]["examples"] = dict(sorted(shared.items()))


def _shared_responses(spec: Spec) -> None:
    """An error answer that several operations give alike is declared once, by its codes."""
    seen: dict[str, list[Spec]] = {}
    for item in spec["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    key = json.dumps(response, sort_keys=True)
                    seen.setdefault(key, []).append(operation["responses"])
    shared: Spec = {}
    for key, users in seen.items():
        if len(users) < 2:
            continue
        response = json.loads(key)
        codes = response["content"]["application/json"]["schema"]["properties"]["code"]["enum"]
        name = "Or".join(c.title().replace("_", "") for c in codes)
        status = next(s for s, r in users[0].items() if json.dumps(r, sort_keys=True) == key)
        if "Idempotent-Replayed" in response.get("headers", {}):
            name += "Replayable"  # the same answer, on an authenticated POST
        if name in shared:
            name = f"{name}{status}"
        shared[name] = response
        for responses in users:
            responses[status] = {"$ref": f"#/components/responses/{name}"}
    spec["components"]["responses"] = dict(sorted(shared.items()))


def finish(spec: Spec) -> Spec:
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["ValidationIssue"] = ValidationIssue.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    components["headers"] = copy.deepcopy(_HEADERS)
    _restore_examples(schemas)
    _page_examples(schemas)
    for path, item in spec["paths"].items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            operation.setdefault("security", [])
            for parameter in operation.get("parameters", []):
                if not parameter.get("required"):
                    parameter["schema"] = _without_null(parameter["schema"])
            body = operation.get("requestBody")
            if body is not None and not body.get("required"):
                for media in body.get("content", {}).values():
                    media["schema"] = _without_null(media["schema"])
            _shared_codes(path, method, operation)
            _headers(method, operation)
            operation["responses"] = dict(sorted(operation["responses"].items()))
            _form_fields(operation, schemas)
    _shared_examples(spec)
    _shared_responses(spec)
    return spec


def install(app: FastAPI, **metadata: Any) -> Callable[[], Spec]:
    """Replaces `app.openapi` with one that builds the finished document once."""

    def openapi() -> Spec:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
                servers=app.servers,
                license_info=app.license_info,
                contact=app.contact,
                separate_input_output_schemas=app.separate_input_output_schemas,
                **metadata,
            )
            app.openapi_schema = finish(spec)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return openapi
