"""Delivery status notifications (RFC 3464): multipart/report to the envelope sender.

A bounce lists the recipients that failed for good with the remote reply; a
delay warning lists those still being tried. The original's headers go back
as text/rfc822-headers (not the whole message: no bounce amplification).
"""

from __future__ import annotations

import email.utils
import re
from email import encoders
from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTP, SMTPUTF8

_BARE_LF = re.compile(rb"(?<!\r)\n")
_STATUS = re.compile(r"^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b")


def status_of(reply: str, failed: bool) -> str:
    """The enhanced status code in a reply, or a generic one."""
    m = _STATUS.match(reply)
    status = m.group(1) if m else ("5.0.0" if failed else "4.0.0")
    if failed and status.startswith("4"):
        return "5.4.7"  # still deferred when the queue lifetime ran out (RFC 3463: delivery time expired)
    return status


def headers_of(data: bytes) -> bytes:
    end = data.find(b"\r\n\r\n")
    return data if end < 0 else data[: end + 2]


def build(
    *,
    reporting_mta: str,
    queue_id: str,
    sender: str,
    arrival_ns: int,
    original: bytes,
    recipients: list[tuple[str, str, str]],
    delayed: bool = False,
    expires_after: str = "",
) -> bytes:
    """The DSN's bytes. ``recipients``: (address, remote reply, remote host)."""
    action = "delayed" if delayed else "failed"
    if delayed:
        text = (
            f"This is the mail system at host {reporting_mta}.\n\n"
            "####################################################################\n"
            "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
            "####################################################################\n\n"
            "Your message could not be delivered yet. The mail system will keep trying"
            + (f" until it has been queued for {expires_after}" if expires_after else "")
            + ".\n\n"
        )
    else:
        text = (
            f"This is the mail system at host {reporting_mta}.\n\n"
            "I'm sorry to have to inform you that your message could not\n"
            "be delivered to one or more recipients. It's attached below.\n\n"
        )
    for addr, reply, remote in recipients:
        text += f"<{addr}>: " + (f"host {remote} said: " if remote else "") + f"{reply}\n"

    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = f"Mail Delivery System <MAILER-DAEMON@{reporting_mta}>"
    report["To"] = sender
    report["Subject"] = (
        "Delayed Mail (still being retried)" if delayed else "Undelivered Mail Returned to Sender"
    )
    report["Date"] = email.utils.formatdate(usegmt=True)
    report["Message-ID"] = email.utils.make_msgid(domain=reporting_mta)
    report["Auto-Submitted"] = "auto-replied"  # RFC 3834: no vacation replies to this
    report.attach(MIMEText(text, "plain", "us-ascii" if text.isascii() else "utf-8"))

    # message/delivery-status: header blocks, one per message and one per recipient.
    per_message = Message()
    per_message["Reporting-MTA"] = f"dns; {reporting_mta}"
    per_message["X-Mailcluster-Queue-ID"] = queue_id
    per_message["Arrival-Date"] = email.utils.formatdate(arrival_ns / 1e9, usegmt=True)
    blocks = [per_message]
    for addr, reply, remote in recipients:
        block = Message()
        block["Final-Recipient"] = f"rfc822; {addr}"
        block["Action"] = action
        block["Status"] = status_of(reply, not delayed)
        if remote:
            block["Remote-MTA"] = f"dns; {remote.rpartition(':')[0] or remote}"
        block["Diagnostic-Code"] = f"smtp; {reply}"
        blocks.append(block)
    # RFC 6533: non-ASCII addresses or replies make it a message/global-delivery-status.
    utf8 = not all(t.isascii() for r in recipients for t in r) or not sender.isascii()
    if utf8:
        # The email package flattens only message/delivery-status from header blocks; the
        # global variant carries the same fields as UTF-8 text.
        report.set_param("report-type", "global-delivery-status")
        status = MIMEBase("message", "global-delivery-status")
        text = "\r\n".join("".join(f"{k}: {v}\r\n" for k, v in b.items()) for b in blocks)
        # RFC 6533 6.2 allows base64 for it (the email package writes message/* as ASCII).
        status.set_payload(text.encode("utf-8"))
        encoders.encode_base64(status)
    else:
        status = MIMEBase("message", "delivery-status")
        payload: list[Message | str] = [*blocks]  # a multipart payload of header blocks
        status.set_payload(payload)
    report.attach(status)

    headers = MIMEBase("text", "rfc822-headers")
    headers.set_payload(headers_of(original).decode("utf-8", "replace"))
    report.attach(headers)
    out = report.as_bytes(policy=SMTPUTF8 if utf8 else SMTP)
    return _BARE_LF.sub(b"\r\n", out)  # an encoded message/* body keeps the encoder's bare LFs


def parse(data: bytes) -> EmailMessage:
    """For tests and tools: the DSN as an email.message."""
    import email
    from email.policy import default

    return email.message_from_bytes(data, policy=default)
