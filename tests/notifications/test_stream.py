"""GET /notifications/stream (Server-Sent Events), against `library-api serve` in a process.

The stream is endless, so it is read from a real server over a socket. That server is
another instance than the in-process app the desk works through: a notification the desk
causes reaches the stream through the database, as from any instance.
"""

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from starlette.testclient import TestClient

from library_api.config import Settings
from tests.conftest import Account, login
from tests.hostile.live import Live, live_server
from tests.notifications.conftest import API, Desk
from tests.notifications.sse import open_stream

HEARTBEAT = 1.0
PER_USER = 2


@pytest.fixture(scope="module")
def live(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_server(
        settings,
        tmp_path_factory.mktemp("stream"),
        NOTIFY_STREAM_POLL_SECONDS="0.2",
        NOTIFY_STREAM_HEARTBEAT_SECONDS=str(HEARTBEAT),
        NOTIFY_STREAM_RECHECK_SECONDS="0.5",
        NOTIFY_STREAMS_PER_USER=str(PER_USER),
    ) as server:
        yield server


@pytest.fixture
def http(live: Live) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=f"http://127.0.0.1:{live.port}", timeout=5) as client:
        yield client


def _bearer(client: TestClient, account: Account) -> dict[str, str]:
    """A session of its own, so that the test can end it."""
    token = login(client, account.email, account.password)["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _hand_over(desk: Desk, reader: Account, returner: Account, title: str) -> None:
    """`reader` waits for the only copy, which `returner` brings back: reservation_ready."""
    book = desk.book(title)
    desk.borrow(returner, book)
    desk.reserve(reader, book)
    desk.give_back(returner, book)


def test_a_new_notification_arrives_within_5_seconds_as_listed(
    http: httpx2.Client,
    client: TestClient,
    desk: Desk,
    member: Account,
    other_member: Account,
) -> None:
    with open_stream(http, _bearer(client, member)) as events:
        assert events.response.headers["content-type"].startswith("text/event-stream")
        assert events.response.headers["cache-control"] == "no-store"
        events.opened()
        started = time.monotonic()
        _hand_over(desk, member, other_member, "The Dispossessed")
        event = events.next_event(within=5)
        assert time.monotonic() - started < 5
    [listed] = desk.notifications(member)
    assert event.fields["event"] == "notification"
    assert event.fields["id"] == listed["id"]
    assert event.json() == listed


def test_last_event_id_replays_the_newer_ones_first(
    http: httpx2.Client,
    client: TestClient,
    desk: Desk,
    member: Account,
    other_member: Account,
) -> None:
    for title in ("Kindred", "Dawn", "Imago"):
        _hand_over(desk, member, other_member, title)
    oldest, *newer = sorted(n["id"] for n in desk.notifications(member))
    headers = _bearer(client, member)
    with open_stream(http, {**headers, "Last-Event-ID": oldest}) as events:
        replayed = [events.next_event(within=5) for _ in newer]
        events.opened()
    assert [e.fields["id"] for e in replayed] == newer
    # Without it, what existed before the stream opened is not sent.
    with open_stream(http, headers) as events:
        events.opened()
        events.quiet_for(1.5)


def test_a_comment_keeps_a_quiet_stream_alive(
    http: httpx2.Client, client: TestClient, member: Account
) -> None:
    with open_stream(http, _bearer(client, member)) as events:
        events.opened()
        for _ in range(3):
            started = time.monotonic()
            assert events.next_comment(within=HEARTBEAT + 1) == "keep-alive"
            assert time.monotonic() - started <= HEARTBEAT + 0.5


def test_the_stream_ends_after_logout(
    http: httpx2.Client, client: TestClient, member: Account
) -> None:
    headers = _bearer(client, member)
    with open_stream(http, headers) as events:
        events.opened()
        assert client.post(f"{API}/auth/logout", headers=headers).status_code == 204
        events.ends(within=5)


def test_the_stream_ends_when_the_user_is_deactivated(
    http: httpx2.Client, client: TestClient, admin: Account, member: Account
) -> None:
    with open_stream(http, _bearer(client, member)) as events:
        events.opened()
        changed = client.patch(
            f"{API}/users/{member.id}", json={"is_active": False}, headers=admin.headers
        )
        assert changed.status_code == 200, changed.text
        events.ends(within=5)


def test_more_streams_than_the_bound_get_429(
    http: httpx2.Client, client: TestClient, member: Account, other_member: Account
) -> None:
    headers = _bearer(client, member)
    with open_stream(http, headers) as first, open_stream(http, headers) as second:
        first.opened()
        second.opened()
        refused = http.get(f"{API}/notifications/stream", headers=headers)
        assert refused.status_code == 429
        assert refused.json()["code"] == "too_many_streams"
        assert int(refused.headers["retry-after"]) > 0
        # The bound is per user: another reader still gets one.
        with open_stream(http, _bearer(client, other_member)) as other:
            other.opened()
    # Closed streams give their places back (the server notices within a poll).
    deadline = time.monotonic() + 5
    while True:
        with http.stream("GET", f"{API}/notifications/stream", headers=headers) as again:
            if again.status_code == 200:
                break
        assert time.monotonic() < deadline, "the places of closed streams were not given back"
        time.sleep(0.2)


@pytest.mark.parametrize("query", ["access_token", "token", "authorization", "bearer"])
def test_a_token_only_in_the_query_string_is_refused(
    http: httpx2.Client, client: TestClient, member: Account, query: str
) -> None:
    token = login(client, member.email, member.password)["access_token"]
    response = http.get(f"{API}/notifications/stream", params={query: token})
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_no_token_or_a_bad_one_is_refused(http: httpx2.Client) -> None:
    response = http.get(f"{API}/notifications/stream")
    assert (response.status_code, response.json()["code"]) == (401, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"
    bad = http.get(f"{API}/notifications/stream", headers={"Authorization": "Bearer nope"})
    assert (bad.status_code, bad.json()["code"]) == (401, "invalid_token")


def test_a_shutdown_ends_open_streams_cleanly(
    settings: Settings,
    tmp_path: Path,
    client: TestClient,
    member: Account,
) -> None:
    with live_server(settings, tmp_path, SHUTDOWN_GRACE_SECONDS="0.5") as server:
        base = f"http://127.0.0.1:{server.port}"
        headers = _bearer(client, member)
        with httpx2.Client(base_url=base, timeout=5) as http, open_stream(http, headers) as events:
            events.opened()
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            events.ends(within=5)
            assert server.process.wait(10) == 0
            assert time.monotonic() - started < 5
        logged = server.logged()
    assert "1 event stream(s) end now" in logged
    assert "cancelled" not in logged
    assert "Traceback" not in logged
    assert "unhandled error" not in logged
