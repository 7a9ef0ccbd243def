"""The ASGI application: `create_app()` builds it; nothing runs at import time."""

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from importlib import resources

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict

from . import __version__, openapi
from .auth.router import router as auth_router
from .books.router import router as books_router
from .config import Settings, get_settings, resolve_jwt_secret
from .db import Database
from .deps import Runtime
from .errors import install_handlers, responses
from .files.backends import open_storage
from .files.router import router as files_router
from .fines.router import router as fines_router
from .idempotency.middleware import IdempotencyMiddleware
from .limits import LimitsMiddleware
from .loans import history as loan_history
from .loans.router import router as loans_router
from .middleware import (
    EmptyQueryMiddleware,
    InternalErrorMiddleware,
    JsonCORSMiddleware,
    RequestContextMiddleware,
    configure_logging,
)
from .notifications.router import router as notifications_router
from .notifications.scheduler import start_scanner, stop_scanner
from .reservations.router import router as reservations_router
from .security import PasswordHasher, TokenSigner
from .stats.router import router as stats_router
from .users import service as users_service
from .users.router import router as users_router
from .users.schemas import admin_account

logger = logging.getLogger("library_api")

DESCRIPTION = """
The backend a library runs its catalogue, members and lending on.

Authenticate with `POST /api/v1/auth/login` (the **Authorize** button works: the email
goes in *username*) and send `Authorization: Bearer <access_token>`.
Every error is `{"detail": ..., "code": ...}` with a stable `code`.
"""


SERVERS = [
    {"url": "/", "description": "The server this document is served from"},
    {
        "url": "http://127.0.0.1:{port}",
        "description": "`make run` on this machine",
        "variables": {"port": {"default": "8000", "description": "PORT"}},
    },
]
LICENSE = {"name": "MIT", "identifier": "MIT"}
CONTACT = {"name": "Library API maintainers", "email": "library-api@example.com"}

# fastapi-offline's ReDoc bundle shows Redocly's logo from a CDN in its menu footer; this
# page loads the same bundle with that one URL pointing at an empty inline image instead.
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
_NO_LOGO = b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"
REDOC_JS_PATH = "/docs-assets/redoc.standalone.js"


@functools.cache
def _redoc_bundle() -> bytes:
    bundle = resources.files("fastapi_offline").joinpath("static/redoc.standalone.js")
    return bundle.read_bytes().replace(_REDOC_LOGO, _NO_LOGO)


class Status(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: str


def _operation_id(route: APIRoute) -> str:
    return route.name


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    configure_logging(settings.log_level)
    # File work (and an fsync on the first start) off the event loop.
    secret = await asyncio.to_thread(resolve_jwt_secret, settings)
    signer = TokenSigner(secret, timedelta(minutes=settings.access_token_minutes))
    database = Database(settings)
    await database.connect()
    runtime = Runtime(
        settings=settings,
        database=database,
        hasher=PasswordHasher(settings),
        signer=signer,
        storage=await open_storage(settings, database),
    )
    app.state.runtime = runtime
    scanner = None
    # Returned loans an older version kept in `loans` move to the history in the background.
    migration = None
    if await loan_history.left_to_move():
        migration = asyncio.create_task(loan_history.migrate(), name="loan-history-migration")
    try:
        if settings.admin_email and settings.admin_password:
            first = admin_account(
                name="Administrator", email=settings.admin_email, password=settings.admin_password
            )
            created = await users_service.ensure_admin(
                email=first.email, password=first.password, hasher=runtime.hasher
            )
            if created is not None:
                logger.info("created the first admin, %s", created.email)
        scanner = start_scanner(settings=settings)
        yield
    finally:
        if migration is not None:
            migration.cancel()
            with suppress(asyncio.CancelledError):
                await migration
        await stop_scanner(scanner)
        await database.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPIOffline(
        title="Library API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        swagger_ui_parameters={"persistAuthorization": True, "validatorUrl": None},
        redoc_url=None,
        servers=SERVERS,
        license_info=LICENSE,
        contact=CONTACT,
    )
    openapi.install(app)
    app.state.settings = settings
    install_handlers(app)

    api = APIRouter(prefix="/api/v1")
    for router in (
        auth_router,
        users_router,
        books_router,
        files_router,
        loans_router,
        fines_router,
        reservations_router,
        notifications_router,
        stats_router,
    ):
        api.include_router(router)
    app.include_router(api)

    redoc_js = _redoc_bundle()

    @app.get(REDOC_JS_PATH, include_in_schema=False)
    async def redoc_bundle() -> Response:
        return Response(redoc_js, media_type="text/javascript")

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - ReDoc",
            redoc_js_url=REDOC_JS_PATH,
            redoc_favicon_url="/static-offline-docs/favicon.png",
            with_google_fonts=False,
        )

    @app.get(
        "/health",
        response_model=Status,
        tags=["operations"],
        summary="Liveness: the process answers (the database is not asked)",
    )
    async def health() -> Status:
        return Status(status="ok")

    @app.get(
        "/ready",
        response_model=Status,
        tags=["operations"],
        responses=responses("database_unavailable"),
        summary="Readiness: the database answers",
    )
    async def ready() -> Status | JSONResponse:
        runtime: Runtime = app.state.runtime
        if await runtime.database.ping():
            return Status(status="ok")
        return JSONResponse(
            {"detail": "The database cannot be reached", "code": "database_unavailable"},
            status_code=503,
        )

    app.add_middleware(EmptyQueryMiddleware)
    app.add_middleware(InternalErrorMiddleware)
    # Inside the limits: a key's body is already bounded and checked when it is hashed.
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(
        LimitsMiddleware,
        max_header_bytes=settings.max_header_bytes,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.header_timeout_seconds,
    )
    app.add_middleware(
        JsonCORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=[
            *("Authorization", "Content-Type", "X-Request-ID", "If-None-Match", "Range"),
            "If-Match",
            "Last-Event-ID",
            "Idempotency-Key",
        ],
        expose_headers=[
            "X-Request-ID",
            "Retry-After",
            "ETag",
            "Content-Disposition",
            "Content-Range",
            "Accept-Ranges",
            "Idempotent-Replayed",
        ],
    )
    app.add_middleware(RequestContextMiddleware)
    return app


def __getattr__(name: str) -> FastAPI:
    # `library_api.main:app` for ASGI servers, built on first access rather than at import.
    if name == "app":
        return create_app()
    raise AttributeError(name)
