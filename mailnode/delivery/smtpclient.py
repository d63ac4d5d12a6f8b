"""One outbound SMTP transaction with aiosmtplib: the result of each recipient.

STARTTLS is opportunistic by default (used when offered, certificate not
checked, as Postfix's ``smtp_tls_security_level = may``); ``encrypt`` requires
it and checks the certificate. A 5xx is final for its recipient, anything else
(4xx, a refused or broken connection, a timeout) means try again later.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import aiosmtplib

from mailnode.proto.journal_pb2 import DeliveryResult

DELIVERED, DEFERRED, BOUNCED = (
    DeliveryResult.DELIVERED,
    DeliveryResult.DEFERRED,
    DeliveryResult.BOUNCED,
)


@dataclass
class Outcome:
    results: dict[str, tuple[int, str]]  # recipient -> (outcome, reply)
    remote: str = ""


def _one_line(text: str, limit: int = 400) -> str:
    return " ".join(text.split())[:limit]


def _reply(code: int, message: str) -> str:
    return _one_line(f"{code} {message}")


def _outcome(code: int) -> int:
    return BOUNCED if 500 <= code < 600 else DEFERRED


class SmtpClient:
    def __init__(self, *, helo: str, timeout: float, connect_timeout: float, starttls: str):
        self.helo = helo
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.starttls = starttls
        if starttls == "encrypt":
            self.tls_context = ssl.create_default_context()
        else:  # opportunistic: encryption against passive listeners; nobody is authenticated
            self.tls_context = ssl.create_default_context()
            self.tls_context.check_hostname = False
            self.tls_context.verify_mode = ssl.CERT_NONE

    async def send(
        self, hosts: list[tuple[str, int, str]], sender: str, rcpts: list[str], data: bytes
    ) -> Outcome:
        """``hosts``: (address, port, name); the name is what a certificate must show."""
        last = "451 4.4.1 no mail host answered"
        for host, port, name in hosts:
            client = aiosmtplib.SMTP(
                hostname=host,
                port=port,
                local_hostname=self.helo,
                timeout=self.timeout,
                start_tls=False,
                validate_certs=self.starttls == "encrypt",
                tls_context=self.tls_context,
            )
            try:
                await client.connect(timeout=self.connect_timeout)
                await client.ehlo()
            except aiosmtplib.SMTPResponseException as e:  # a 4xx/5xx greeting: try the next host
                last = _reply(e.code, e.message)
                client.close()
                continue
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as e:
                last = _one_line(f"451 4.4.1 connect to {host}:{port}: {e.__class__.__name__}: {e}")
                client.close()
                continue
            try:
                return await self._transaction(client, f"{host}:{port}", name, sender, rcpts, data)
            finally:
                client.close()
        return Outcome({r: (DEFERRED, last) for r in rcpts})

    async def _transaction(
        self,
        client: aiosmtplib.SMTP,
        remote: str,
        name: str,
        sender: str,
        rcpts: list[str],
        data: bytes,
    ) -> Outcome:
        results: dict[str, tuple[int, str]] = {}
        try:
            if self.starttls != "none" and client.supports_extension("starttls"):
                await client.starttls(server_hostname=name)
                await client.ehlo()  # RFC 3207: what the server offers may change under TLS
            elif self.starttls == "encrypt":
                return Outcome(
                    {r: (DEFERRED, "451 4.7.4 TLS required but not offered") for r in rcpts}, remote
                )
            utf8 = not all(a.isascii() for a in [sender, *rcpts])
            options, encoding = [], "ascii"
            if utf8:
                if not client.supports_extension("smtputf8"):
                    reply = "550 5.6.7 non-ASCII address and the remote server does not support SMTPUTF8"
                    return Outcome({r: (BOUNCED, reply) for r in rcpts}, remote)
                options, encoding = ["SMTPUTF8"], "utf-8"
            try:
                await client.mail(sender, options=options, encoding=encoding)
            except aiosmtplib.SMTPResponseException as e:
                return Outcome(
                    {r: (_outcome(e.code), _reply(e.code, e.message)) for r in rcpts}, remote
                )
            accepted = []
            for rcpt in rcpts:
                try:
                    await client.rcpt(rcpt, encoding=encoding)
                    accepted.append(rcpt)
                except aiosmtplib.SMTPResponseException as e:
                    results[rcpt] = (_outcome(e.code), _reply(e.code, e.message))
            if accepted:
                try:
                    resp = await client.data(data)
                    for rcpt in accepted:
                        results[rcpt] = (DELIVERED, _reply(resp.code, resp.message))
                except aiosmtplib.SMTPResponseException as e:
                    for rcpt in accepted:
                        results[rcpt] = (_outcome(e.code), _reply(e.code, e.message))
            try:
                await client.quit()
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                pass  # the outcome is known; a lost QUIT changes nothing
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as e:
            # The connection broke mid-transaction: whatever has no final reply is tried again.
            reply = _one_line(f"451 4.4.2 {remote}: connection lost: {e.__class__.__name__}: {e}")
            for rcpt in rcpts:
                if results.get(rcpt, (DEFERRED,))[0] != DELIVERED:
                    results.setdefault(rcpt, (DEFERRED, reply))
        return Outcome(results, remote)
