"""Mail through a real SMTP server (aiosmtpd, in-process): once each, and after an outage."""

import email
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from email.message import Message
from functools import partial
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from bson import ObjectId
from starlette.testclient import TestClient

from library_api import clock
from library_api.notifications import outbox
from tests.conftest import Account
from tests.notifications.conftest import Desk, free_port, when

# A test server without TLS; the client logs in all the same.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

SENDER = "desk@library.example"
USER, PASSWORD = "library", "p@ss word"


class Inbox:
    def __init__(self) -> None:
        self.received: list[tuple[list[str], Message]] = []

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, _: Any
    ) -> str:
        if address.startswith("bounce"):
            return "550 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        assert envelope.mail_from == SENDER
        content = envelope.content
        assert isinstance(content, bytes)
        self.received.append((list(envelope.rcpt_tos), email.message_from_bytes(content)))
        return "250 Message accepted for delivery"


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok)


class MailServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.inbox = Inbox()
        self._controller: Controller | None = None
        # Credentials with URL-escaped characters, as SMTP_URL carries them.
        self.url = f"smtp://{USER}:p%40ss%20word@127.0.0.1:{self.port}"

    def start(self) -> None:
        self._controller = Controller(
            self.inbox,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=_authenticate,
            auth_required=True,
            auth_require_tls=False,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def received(self) -> list[tuple[list[str], Message]]:
        return self.inbox.received


@pytest.fixture
def smtp() -> Iterator[MailServer]:
    server = MailServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mailing(
    smtp: MailServer, app_with: Any, make_desk: Callable[[TestClient], Desk]
) -> Iterator[Desk]:
    """A desk on an API instance that mails through `smtp`.

    While it runs, the main client must not be used (one app at a time per process): list
    this fixture after every account fixture.
    """
    with app_with(smtp_url=smtp.url, smtp_from=SENDER) as other:
        yield make_desk(other)


def _due_in(hours: float, loan: dict[str, Any]) -> None:
    due = datetime.fromisoformat(loan["due_at"])
    clock.advance(due - clock.now() - timedelta(hours=hours))


def _text(message: Message) -> str:
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    return body.decode()


def test_each_notification_is_mailed_once(
    member: Account, raw_db: Any, smtp: MailServer, mailing: Desk
) -> None:
    loan = mailing.borrow(member, mailing.book("Dune"))
    _due_in(23, loan)
    assert mailing.scan() == 1
    [(recipients, message)] = smtp.received
    assert recipients == [member.email]
    assert member.email in message["To"]
    assert message["From"] == SENDER
    assert message["Subject"] == "A loan is due soon"
    assert message.get_content_type() == "text/plain"
    assert "Dune" in _text(message)
    assert when(loan["due_at"]) in _text(message)
    assert raw_db.notifications.find_one()["mailed_at"] is not None

    assert mailing.scan() == 0
    assert len(smtp.received) == 1

    clock.advance(timedelta(days=1))
    assert mailing.scan() == 1
    assert len(smtp.received) == 2
    assert smtp.received[1][1]["Subject"] == "A loan is overdue"
    assert "overdue" in _text(smtp.received[1][1])
    assert mailing.scan() == 0
    assert len(smtp.received) == 2


def test_reservation_ready_is_mailed(
    member: Account, other_member: Account, smtp: MailServer, mailing: Desk
) -> None:
    book = mailing.book("Kindred")
    mailing.borrow(member, book)
    mailing.reserve(other_member, book)
    mailing.give_back(member, book)
    assert mailing.scan() == 0  # created at the hand-over; the scan mails it
    [(recipients, message)] = smtp.received
    assert recipients == [other_member.email]
    assert message["Subject"] == "Your reservation is ready"
    assert "Kindred" in _text(message)
    assert "until" in _text(message)


def test_an_outage_delays_the_mail_which_then_goes_once(
    member: Account, raw_db: Any, smtp: MailServer, mailing: Desk
) -> None:
    loan = mailing.borrow(member, mailing.book("Dune"))
    _due_in(20, loan)
    smtp.stop()
    assert mailing.scan() == 1  # a mail failure does not fail the scan
    stored = raw_db.notifications.find_one()
    assert stored["mailed_at"] is None
    assert stored["mail_attempts"] == 1
    assert stored["next_mail_at"] > clock.now()
    assert len(mailing.notifications(member)) == 1

    smtp.start()
    mailing.scan()
    assert smtp.received == []  # still backing off

    clock.advance(timedelta(minutes=6))
    assert mailing.scan() == 0
    assert len(smtp.received) == 1
    assert "Dune" in _text(smtp.received[0][1])
    for _ in range(2):
        clock.advance(timedelta(hours=1))
        mailing.scan()
    assert len(smtp.received) == 1
    assert raw_db.notifications.find_one()["mailed_at"] is not None


def test_concurrent_scans_mail_each_notification_once(
    member: Account, other_member: Account, smtp: MailServer, mailing: Desk
) -> None:
    for title in ("One", "Two", "Three"):
        mailing.borrow(member, mailing.book(title))
    mailing.borrow(other_member, mailing.book("Four"))
    clock.advance(timedelta(days=15))
    mailing.headers(mailing.admin)
    with ThreadPoolExecutor(max_workers=6) as pool:
        assert sum(pool.map(lambda _: mailing.scan(), range(6))) == 4
    assert len(smtp.received) == 4
    assert sorted(r for recipients, _ in smtp.received for r in recipients) == sorted(
        [member.email] * 3 + [other_member.email]
    )
    texts = sorted(_text(message).split('"')[1] for _, message in smtp.received)
    assert texts == ["Four", "One", "Three", "Two"]


@pytest.fixture
def bouncing(make_account: Callable[..., Account]) -> Account:
    return make_account("member", email="bounce-me@example.com")


def test_a_refused_recipient_does_not_stop_the_others(
    member: Account, bouncing: Account, raw_db: Any, smtp: MailServer, mailing: Desk
) -> None:
    mailing.borrow(bouncing, mailing.book("Lost"))
    mailing.borrow(member, mailing.book("Found"))
    clock.advance(timedelta(days=15))
    assert mailing.scan() == 2
    assert [recipients for recipients, _ in smtp.received] == [[member.email]]
    refused = raw_db.notifications.find_one({"message": {"$regex": "Lost"}})
    assert refused["mailed_at"] is None
    assert refused["next_mail_at"] is not None
    assert "550" in refused["mail_error"]


def test_without_smtp_url_notifications_are_stored_not_mailed(
    desk: Desk, smtp: MailServer, raw_db: Any, member: Account
) -> None:
    desk.borrow(member, desk.book())
    clock.advance(timedelta(days=15))
    assert desk.scan() == 1
    assert smtp.received == []
    assert raw_db.notifications.find_one()["mailed_at"] is None


# --- a backlog: batch after batch within one scan ----------------------------------------


def _backlog(raw_db: Any, reader: Account, count: int) -> None:
    """`count` overdue notifications waiting to be mailed (set-up: no loans behind them)."""
    now = clock.now()
    raw_db.notifications.insert_many(
        {
            "key": f"overdue:{ObjectId()}",
            "user_id": ObjectId(reader.id),
            "kind": "overdue",
            "loan_id": ObjectId(),
            "reservation_id": None,
            "message": f"Backlog {n:03d}",
            "created_at": now,
            "read_at": None,
            "next_mail_at": now,
            "mailed_at": None,
            "mail_attempts": 0,
            "mail_claim": None,
            "mail_claimed_until": None,
            "mail_error": None,
        }
        for n in range(count)
    )


def _backlog_texts(smtp: MailServer) -> list[str]:
    return sorted(
        line
        for _, message in smtp.received
        for line in _text(message).splitlines()
        if line.startswith("Backlog")
    )


def test_one_scan_mails_a_backlog_of_more_than_one_batch(
    member: Account, raw_db: Any, smtp: MailServer, mailing: Desk
) -> None:
    count = outbox.MAIL_BATCH + 2
    _backlog(raw_db, member, count)
    assert mailing.scan() == 0
    assert _backlog_texts(smtp) == [f"Backlog {n:03d}" for n in range(count)]
    assert raw_db.notifications.count_documents({"mailed_at": None}) == 0
    mailing.scan()
    assert len(smtp.received) == count


def _send(desk: Desk, **options: Any) -> int:
    """`send_pending_mail` with other batch or budget, on the desk's (mailing) app."""
    settings = desk.client.app.state.runtime.settings  # type: ignore[attr-defined]
    job = partial(outbox.send_pending_mail, settings=settings, **options)
    sent: int = desk.client.portal.call(job)  # type: ignore[union-attr]
    return sent


def test_batches_follow_one_another_and_concurrent_senders_share_them(
    member: Account, raw_db: Any, smtp: MailServer, mailing: Desk
) -> None:
    _backlog(raw_db, member, 5)
    assert _send(mailing, batch=2) == 5
    assert _send(mailing, batch=2) == 0
    assert _backlog_texts(smtp) == [f"Backlog {n:03d}" for n in range(5)]

    raw_db.notifications.delete_many({})
    smtp.received.clear()
    _backlog(raw_db, member, 9)
    with ThreadPoolExecutor(max_workers=3) as pool:
        sent = list(pool.map(lambda _: _send(mailing, batch=2), range(3)))
    assert sum(sent) == 9
    assert _backlog_texts(smtp) == [f"Backlog {n:03d}" for n in range(9)]


def test_no_new_batch_once_the_time_budget_is_spent(
    member: Account, raw_db: Any, smtp: MailServer, mailing: Desk
) -> None:
    _backlog(raw_db, member, 5)
    spent = timedelta(0)
    assert [_send(mailing, batch=2, budget=spent) for _ in range(4)] == [2, 2, 1, 0]
    assert _backlog_texts(smtp) == [f"Backlog {n:03d}" for n in range(5)]
