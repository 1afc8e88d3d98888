"""Sending mail: one way for every message Pairwise sends (sign-in links, invitations,
calendar invites, reminders, digests), through the SMTP server in `PAIRWISE_SMTP_*`.

The domain builds an `email.message.EmailMessage`; `Mailer.send` delivers it with aiosmtplib.
With no SMTP host configured, mail is off: `Mailer.enabled` is False and `send` raises
`MailOff`, so a caller can show the link to copy instead.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from server.config import Settings


class MailOff(Exception):
    """No SMTP server is configured."""


class MailFailed(Exception):
    """The SMTP server refused the message or could not be reached."""


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @property
    def enabled(self) -> bool:
        return self._settings.smtp_host is not None

    @property
    def sender(self) -> str:
        return self._settings.smtp_from

    def message(self, to: str, subject: str, text: str) -> EmailMessage:
        """A plain-text message from Pairwise; add alternatives or attachments to it."""
        message = EmailMessage()
        message["From"] = self._settings.smtp_from
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain=_domain(self._settings.smtp_from))
        message.set_content(text)
        return message

    async def send(self, message: EmailMessage) -> None:
        settings = self._settings
        if settings.smtp_host is None:
            raise MailOff("no SMTP server is configured (PAIRWISE_SMTP_HOST)")
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=settings.smtp_password,
                use_tls=settings.smtp_tls == "tls",
                start_tls=settings.smtp_tls == "starttls",
                timeout=30,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise MailFailed(f"mail to {message['To']} was not sent: {exc}") from exc


def _domain(address: str) -> str:
    return address.rsplit("@", 1)[-1].strip("> ") or "localhost"
