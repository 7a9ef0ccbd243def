"""/docs driven in a real browser: Debian's Chromium through Playwright (never a downloaded
browser). Authorize with the password flow, try search, create a book from the pre-filled
example, upload a cover, borrow as a member; the statuses Swagger shows are asserted and
screenshots kept in `artifacts/screenshots/` (git-ignored).

Skipped with the reason when Chromium or Playwright is missing (`apt-get install chromium`,
`pip install playwright`); in CI (`CI` set) that fails instead.
"""

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.clients.conftest import LiveApi, require

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
MEMBER_EMAIL = "ada.lovelace@example.com"
MEMBER_PASSWORD = "analytical engine 1843"
# A 1x1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d4944415478da63fccf003c0f000485018084a98c210000000049454e44ae426082"
)
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def page(live_api: LiveApi, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    require(Path(CHROMIUM).exists(), f"Chromium is not installed at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "the playwright package is not installed")
        raise
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.outside = []  # type: ignore[attr-defined]

        def only_local(route: Any) -> None:
            if urlsplit(route.request.url).hostname in (
                "127.0.0.1",
                None,
            ) or route.request.url.startswith("data:"):
                route.continue_()
            else:
                page.outside.append(route.request.url)  # type: ignore[attr-defined]
                route.abort()

        page.route("**/*", only_local)
        yield page
        context.close()
        browser.close()


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


def _authorize(page: Any, email: str, password: str) -> str:
    """Fills Swagger's Authorize dialog (logging out first); the dialog's text after."""
    modal = page.locator(".modal-ux")
    if not modal.count():
        page.locator(".auth-wrapper button.authorize").click()
    modal.locator(".auth-btn-wrapper").wait_for()
    logout = modal.locator(".auth-btn-wrapper button", has_text="Logout")
    if logout.count():
        logout.click()
    modal.locator("#oauth_username").fill(email)
    modal.locator("#oauth_password").fill(password)
    modal.locator(".auth-btn-wrapper button.authorize").click()
    modal.get_by_text("Auth Error").or_(logout).first.wait_for()
    text: str = modal.inner_text()
    return text


def _close_modal(page: Any) -> None:
    page.locator(".modal-ux .auth-btn-wrapper button", has_text="Close").click()


def _operation(page: Any, tag: str, operation_id: str) -> Any:
    block = page.locator(f"#operations-{tag}-{operation_id}")
    if not block.locator(".opblock-body").count():
        block.locator(".opblock-summary").first.click()
    if block.locator("button.try-out__btn:not(.cancel)").count():
        block.locator("button.try-out__btn").click()
    return block


def _execute(block: Any) -> tuple[int, Any]:
    block.locator("button.execute").click()
    status = block.locator(".live-responses-table .response .response-col_status").first
    status.wait_for()
    status.scroll_into_view_if_needed()
    body_text = block.locator(
        ".live-responses-table .response-col_description pre"
    ).first.inner_text()
    try:
        body = json.loads(body_text)
    except ValueError:
        body = body_text
    return int(status.inner_text().strip()), body


def test_swagger_try_it_out(page: Any, live_api: LiveApi, tmp_path: Path) -> None:
    register = urllib.request.Request(  # noqa: S310 - the live server's own URL
        f"{live_api.base}/api/v1/auth/register",
        data=json.dumps(
            {"name": "Ada Lovelace", "email": MEMBER_EMAIL, "password": MEMBER_PASSWORD}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(register) as answer:  # noqa: S310
        assert answer.status == 201

    page.goto(f"{live_api.base}/docs")
    page.locator("#operations-books-list_books").wait_for()
    _shot(page, "01-docs")

    refused = _authorize(page, live_api.admin_email, "not the password")
    _shot(page, "02-authorize-refused")
    assert "invalid_grant" in refused, refused
    shown = _authorize(page, live_api.admin_email, live_api.admin_password)
    assert "Authorized" in shown, shown
    _close_modal(page)

    create = _operation(page, "books", "create_book")
    status, book = _execute(create)
    _shot(page, "03-create-book")
    assert status == 201, book
    assert book["isbn"] == "9780441478125"

    search = _operation(page, "books", "list_books")
    search.locator("tr[data-param-name='q'] input").fill("left hand")
    status, found = _execute(search)
    _shot(page, "04-search")
    assert status == 200, found
    assert [b["id"] for b in found["items"]] == [book["id"]]

    cover = tmp_path / "cover.png"
    cover.write_bytes(PNG)
    upload = _operation(page, "files", "upload_cover")
    upload.locator("tr[data-param-name='book_id'] input").fill(book["id"])
    upload.locator("input[type=file]").set_input_files(str(cover))
    status, covered = _execute(upload)
    _shot(page, "05-upload-cover")
    assert status == 200, covered
    assert covered["cover_url"].startswith(f"/api/v1/books/{book['id']}/cover")

    _authorize(page, MEMBER_EMAIL, MEMBER_PASSWORD)
    _close_modal(page)
    borrow = _operation(page, "loans", "borrow_book")
    borrow.locator("tr[data-param-name='book_id'] input").fill(book["id"])
    assert json.loads(borrow.locator("textarea.body-param__text").input_value()) == {}
    status, loan = _execute(borrow)
    _shot(page, "06-borrow-as-member")
    assert status == 201, loan
    assert loan["book_id"] == book["id"] and loan["status"] == "active"

    page.goto(f"{live_api.base}/redoc")
    page.locator("text=Library API").first.wait_for()
    page.wait_for_timeout(1000)
    _shot(page, "07-redoc")
    assert page.outside == []  # type: ignore[attr-defined]
