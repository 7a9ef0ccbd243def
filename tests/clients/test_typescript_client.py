"""The TypeScript client in clients/typescript: types generated from the committed document
by openapi-typescript, compiled by `tsc` (strict), then run with Node's fetch against a
live server. Needs `npm ci` in clients/typescript (`make client` does it, and runs
`tsc --noEmit`)."""

import os
import shutil
import subprocess
from pathlib import Path

from tests.clients.conftest import LiveApi, require

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "typescript"


def _npm(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["npm", "run", "--silent", *args],
        cwd=CLIENT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, f"npm run {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_generated_client_compiles_and_runs(live_api: LiveApi) -> None:
    require(shutil.which("node") is not None, "Node.js is not installed")
    require(
        (CLIENT / "node_modules" / ".bin" / "openapi-typescript").exists(),
        "clients/typescript has no node_modules: run `make client` (npm ci)",
    )
    _npm("generate")
    # `tsc` under `strict` (the same check as `make client`'s `tsc --noEmit`), emitting JS.
    _npm("build")
    env = {
        **os.environ,
        "ADMIN_EMAIL": live_api.admin_email,
        "ADMIN_PASSWORD": live_api.admin_password,
    }
    out = _npm("smoke", "--", live_api.base, env=env)
    assert "ok - the cover's ETag is" in out, out
    assert "ok - a second borrow is refused" in out, out
