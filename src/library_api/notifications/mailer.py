"""Plain-text mail over SMTP, configured by `SMTP_URL`.

`smtp://user:pass@host:587?starttls=1` upgrades the connection with STARTTLS;
`smtps://user:pass@host:465` speaks TLS from the first byte; plain `smtp://host:25`
sends in the clear (a local relay). User name and password are URL-decoded.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

# Errors meaning "this attempt failed, try again later": the server is down, slow or refusing.
MAIL_ERRORS = (aiosmtplib.SMTPException, OSError, TimeoutError)
# The server refused one message but the session goes on (aiosmtplib resets it).
MESSAGE_ERRORS = (
    aiosmtplib.SMTPRecipientsRefused,
    aiosmtplib.SMTPRecipientRefused,
    aiosmtplib.SMTPSenderRefused,
    aiosmtplib.SMTPDataError,
)

_TRUE = {"1", "true", "yes", "on"}


class SmtpUrlError(ValueError):
    """SMTP_URL cannot be understood."""


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    hostname: str
    port: int | None
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool
    timeout: float = 10.0

    @classmethod
    def from_url(cls, url: str) -> "SmtpConfig":
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise SmtpUrlError("SMTP_URL must look like smtp://user:pass@host:port?starttls=1")
        query = parse_qs(parts.query)
        start_tls = query.get("starttls", ["0"])[-1].lower() in _TRUE
        use_tls = parts.scheme == "smtps"
        if use_tls and start_tls:
            raise SmtpUrlError("SMTP_URL: smtps:// is already TLS; drop ?starttls=1")
        try:
            port = parts.port
        except ValueError as exc:
            raise SmtpUrlError(f"SMTP_URL: {exc}") from None
        return cls(
            hostname=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            use_tls=use_tls,
            start_tls=start_tls,
        )


def compose(
    *, sender: str, to: str, name: str, subject: str, text: str, date: datetime
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = formataddr((name, to))
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(
        f"Hello {name},\n\n{text}\n\nThis message was sent by the library; "
        "you can also read it in the app.\n"
    )
    return message


class Connection:
    def __init__(self, smtp: aiosmtplib.SMTP) -> None:
        self._smtp = smtp

    async def send(self, message: EmailMessage) -> None:
        await self._smtp.send_message(message)


@asynccontextmanager
async def connect(config: SmtpConfig) -> AsyncIterator[Connection]:
    """One SMTP session (log-in included) for a batch of messages."""
    smtp = aiosmtplib.SMTP(
        hostname=config.hostname,
        port=config.port,
        username=config.username,
        password=config.password,
        use_tls=config.use_tls,
        start_tls=config.start_tls,
        timeout=config.timeout,
    )
    await smtp.connect()
    try:
        yield Connection(smtp)
    finally:
        if smtp.is_connected:
            try:
                await smtp.quit()
            except MAIL_ERRORS:
                smtp.close()
