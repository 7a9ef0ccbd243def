"""`library-api serve | create-admin | seed-demo | check-consistency`."""

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable

from granian.constants import HTTPModes, Interfaces
from pydantic import ValidationError

from . import server
from .config import ConfigError, Settings, get_settings, resolve_jwt_secret
from .db import Database, DatabaseUnreachableError
from .middleware import configure_logging, server_log_config
from .security import PasswordHasher
from .server import http1_settings


def _fail(message: str) -> None:
    print(f"library-api: {message}", file=sys.stderr)
    raise SystemExit(1)


def _check_admin(name: str, email: str, password: str) -> tuple[str, str]:
    """The admin's email and password as the API would accept them, or a one-line exit."""
    from .errors import AppError
    from .users.schemas import admin_account
    from .users.service import check_strength

    try:
        account = admin_account(name=name, email=email, password=password)
        check_strength(password=account.password, email=account.email)
    except ValueError as exc:
        _fail(f"invalid admin account: {exc}")
        raise
    except AppError as exc:
        _fail(f"invalid admin account: {exc.detail}")
        raise
    return account.email, account.password


def _settings() -> Settings:
    try:
        settings = get_settings()
        configure_logging(settings.log_level)
        resolve_jwt_secret(settings)
        if settings.admin_email and settings.admin_password:
            _check_admin("Administrator", settings.admin_email, settings.admin_password)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        _fail(f"invalid configuration: {errors}")
        raise
    except ConfigError as exc:
        _fail(str(exc))
        raise
    return settings


async def _with_database(settings: Settings, work: Callable[[Database], Awaitable[None]]) -> None:
    database = Database(settings)
    await database.connect()
    try:
        await work(database)
    finally:
        await database.close()


def _run(settings: Settings, work: Callable[[Database], Awaitable[None]]) -> None:
    try:
        asyncio.run(_with_database(settings, work))
    except DatabaseUnreachableError as exc:
        _fail(str(exc))


def serve(args: argparse.Namespace) -> None:
    settings = _settings()
    if settings.mongodb_url:
        # Fail here, in one line, rather than in a traceback from inside the server.
        _run(settings, lambda _: asyncio.sleep(0))
    log_config = server_log_config(settings.log_level)
    if args.reload:
        from granian import Granian

        # A process per code change: for development only, so no graceful drain here.
        Granian(
            "library_api.main:create_app",
            factory=True,
            address=args.host,
            port=args.port,
            interface=Interfaces.ASGI,
            http=HTTPModes.http1,
            websockets=False,
            http1_settings=http1_settings(settings),
            log_dictconfig=log_config,
            reload=True,
        ).serve()
        return
    from .main import create_app

    server.run(
        create_app(settings),
        settings=settings,
        host=args.host,
        port=args.port,
        log_config=log_config,
    )


def create_admin(args: argparse.Namespace) -> None:
    from .errors import AppError
    from .users import service as users_service
    from .users.models import Role

    settings = _settings()
    password = os.environ.get("ADMIN_PASSWORD") or getpass.getpass("Password for the new admin: ")
    email, password = _check_admin(args.name, args.email, password)

    async def work(_: Database) -> None:
        try:
            user = await users_service.create_user(
                name=args.name.strip(),
                email=email,
                password=password,
                role=Role.admin,
                hasher=PasswordHasher(settings),
            )
        except AppError as exc:
            _fail(exc.detail)
            return
        print(f"created admin {user.email} ({user.id})")

    _run(settings, work)


def seed_demo(args: argparse.Namespace) -> None:
    from .books.demo import seed

    settings = _settings()

    async def work(_: Database) -> None:
        hasher = PasswordHasher(settings)
        print(await seed(hasher=hasher, reset_passwords=args.reset_passwords))

    _run(settings, work)


def check_consistency(args: argparse.Namespace) -> None:
    from .loans import consistency

    settings = _settings()
    drift: list[str] = []

    def progress(line: str) -> None:
        print(line, flush=True)

    async def work(_: Database) -> None:
        if args.repair:
            for line in await consistency.repair(settings=settings, progress=progress):
                print(f"repaired {line}", flush=True)
        drift.extend(await consistency.check_consistency(settings=settings))

    _run(settings, work)
    for line in drift:
        print(line)
    if drift:
        _fail(f"{len(drift)} counter(s) drifted from the loans and reservations")
    print("consistent: every copy and loan counter matches the loans and reservations")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="library-api", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("serve", help="run the HTTP service")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    p.add_argument("--reload", action="store_true", help="restart on code changes")
    p.set_defaults(handler=serve)

    p = commands.add_parser("create-admin", help="create an admin account")
    p.add_argument("--email", required=True)
    p.add_argument("--name", required=True)
    p.set_defaults(handler=create_admin)

    p = commands.add_parser("seed-demo", help="load a small demo catalogue and accounts")
    p.add_argument(
        "--reset-passwords",
        action="store_true",
        help="give the demo accounts new passwords (printed) and end their sessions",
    )
    p.set_defaults(handler=seed_demo)

    p = commands.add_parser(
        "check-consistency", help="recompute copy and loan counters; exit 1 on drift"
    )
    p.add_argument("--repair", action="store_true", help="first set drifted counters right")
    p.set_defaults(handler=check_consistency)

    args = parser.parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()
