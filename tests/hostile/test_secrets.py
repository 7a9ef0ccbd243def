"""The JWT signing key: never empty, short or readable by others, never half-written."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from library_api.config import ConfigError, Settings, resolve_jwt_secret
from library_api.main import create_app


def _embedded(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        embedded_db_path=str(tmp_path / "data" / "library.sqlite3"),
        uploads_dir=tmp_path / "uploads",
        notify_interval_seconds=0,
        log_level="WARNING",
    )


def _key_file(tmp_path: Path, content: str, mode: int = 0o600) -> Path:
    key_file = tmp_path / "data" / "jwt-secret"
    key_file.parent.mkdir(mode=0o700)
    key_file.write_text(content)
    key_file.chmod(mode)
    return key_file


def _serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "library_api.cli", "serve", "--port", "9"],
        # No .env of the checkout's; the key comes from the data directory alone.
        cwd=tmp_path,
        env={
            **{k: v for k, v in os.environ.items() if k not in ("JWT_SECRET", "MONGODB_URL")},
            "EMBEDDED_DB_PATH": str(tmp_path / "data" / "library.sqlite3"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("library-api: ")
    return lines[0]


def test_an_empty_key_file_stops_start_up_in_one_line(tmp_path: Path) -> None:
    # What a crash between creating the file and writing the key left behind.
    key_file = _key_file(tmp_path, "")
    line = _one_line(_serve(tmp_path))
    assert str(key_file) in line and "empty" in line
    assert key_file.read_text() == "", "the key file must be left for the operator"


@pytest.mark.parametrize("content", ["short-key", "x" * 31, "   \n", "\udcff" * 40])
def test_a_key_shorter_than_32_bytes_is_refused(tmp_path: Path, content: str) -> None:
    key_file = tmp_path / "data" / "jwt-secret"
    key_file.parent.mkdir(mode=0o700)
    key_file.write_bytes(content.encode(errors="surrogateescape"))
    key_file.chmod(0o600)
    with pytest.raises(ConfigError, match="shorter than 32 bytes"):
        resolve_jwt_secret(_embedded(tmp_path))


def test_a_key_of_32_bytes_is_taken(tmp_path: Path) -> None:
    _key_file(tmp_path, "k" * 32 + "\n")
    assert resolve_jwt_secret(_embedded(tmp_path)) == "k" * 32


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644])
def test_a_key_file_open_to_other_accounts_is_refused(tmp_path: Path, mode: int) -> None:
    key_file = _key_file(tmp_path, "k" * 64, mode)
    with pytest.raises(ConfigError, match=f"open to other accounts \\(mode {mode:03o}\\)"):
        resolve_jwt_secret(_embedded(tmp_path))
    line = _one_line(_serve(tmp_path))
    assert f"chmod 600 {key_file}" in line


def test_a_short_jwt_secret_stops_start_up_in_one_line(tmp_path: Path) -> None:
    line = _one_line(_serve(tmp_path, JWT_SECRET="s" * 31))
    assert "32 bytes" in line
    # Even settings built without their validation cannot sign with a short key.
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        resolve_jwt_secret(Settings.model_construct(jwt_secret="s" * 31, mongodb_url=None))


def test_the_app_itself_refuses_to_start_with_a_bad_key(tmp_path: Path) -> None:
    """Served without the CLI (an ASGI server importing the app), the lifespan refuses too."""
    _key_file(tmp_path, "")
    settings = _embedded(tmp_path)
    with (
        pytest.raises(ConfigError, match="empty or shorter than 32 bytes"),
        TestClient(create_app(settings)),
    ):
        pass
    assert not (tmp_path / "data" / "library.sqlite3").exists(), "refused before the database"


def test_a_generated_key_is_private_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        secret = resolve_jwt_secret(_embedded(tmp_path))
    finally:
        os.umask(previous)
    key_file = tmp_path / "data" / "jwt-secret"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.read_text() == secret and len(secret.encode()) >= 32
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["jwt-secret"], "temporary left"


def test_a_key_another_process_just_wrote_is_never_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs = "t" * 64
    link = os.link

    def another_process_first(source: str, destination: str) -> None:
        # A second instance starting at the same moment puts its own key there first.
        Path(destination).write_text(theirs)
        Path(destination).chmod(0o600)
        link(source, destination)

    monkeypatch.setattr(os, "link", another_process_first)
    assert resolve_jwt_secret(_embedded(tmp_path)) == theirs
    key_file = tmp_path / "data" / "jwt-secret"
    assert key_file.read_text() == theirs
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["jwt-secret"], "temporary left"


def test_a_start_cut_short_before_the_key_is_in_place_leaves_no_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def power_cut(source: str, destination: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "link", power_cut)
    with pytest.raises(KeyboardInterrupt):
        resolve_jwt_secret(_embedded(tmp_path))
    monkeypatch.undo()
    key_file = tmp_path / "data" / "jwt-secret"
    assert not key_file.exists(), "a key file that is not whole must not have the final name"
    # The next start generates a key rather than refusing an empty one.
    assert len(resolve_jwt_secret(_embedded(tmp_path)).encode()) >= 32


def test_a_data_directory_that_cannot_be_made_stops_start_up_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file where the data directory should be")
    line = _one_line(_serve(tmp_path))
    assert "cannot keep the signing key" in line and str(tmp_path / "data") in line
