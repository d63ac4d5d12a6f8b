"""SMTP replies, with RFC 3463 enhanced status codes, named once."""

OK_QUEUED = "250 2.0.0 Ok: queued as {}"
RCPT_OK = "250 2.1.5 Ok"
SENDER_OK = "250 2.1.0 Ok"
RELAY_DENIED = "554 5.7.1 <{}>: Relay access denied"
USER_UNKNOWN = "550 5.1.1 <{}>: Recipient address rejected: User unknown"
BAD_ADDRESS = "501 5.1.3 <{}>: Bad recipient address syntax"
TOO_MANY_RCPTS = "452 4.5.3 Error: too many recipients"
SIZE_EXCEEDED = "552 5.3.4 Error: message size exceeds fixed maximum message size"
BARE_NEWLINE = (
    "550 5.5.2 Error: bare <CR> or <LF> in message data (RFC 5321 2.3.8); message refused"
)
LINE_TOO_LONG = (
    "550 5.5.6 Error: message line longer than 1000 octets (RFC 5321 4.5.3.1.6); message refused"
)
NOT_PRIMARY = "451 4.3.2 <{}>: mailbox temporarily not served by this node; try again later"
# RFC 3463 4.2.2: mailbox full. Temporary, as Postfix and Dovecot answer it: the sender
# retries, and the message arrives once the subscriber made room.
OVER_QUOTA = "452 4.2.2 <{}>: Mailbox full (over quota: {})"
OVER_QUOTA_DATA = "452 4.2.2 Mailbox full: every recipient is over quota"
COMMIT_FAILED = "451 4.3.0 Error: queue file write error; try again later"
INTERNAL_ERROR = "451 4.3.0 Error: internal error; try again later"

# Default enhanced codes for replies that aiosmtpd itself sends without one.
DEFAULT_ENHANCED = {
    "221": "2.0.0",
    "250": "2.0.0",
    "252": "2.0.0",
    "421": "4.3.0",
    "451": "4.3.0",
    "452": "4.5.3",
    "454": "4.7.0",
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "530": "5.7.0",
    "535": "5.7.8",
    "550": "5.0.0",
    "552": "5.3.4",
    "553": "5.1.3",
    "554": "5.0.0",
    "555": "5.5.4",
}

# Submission (RFC 6409, RFC 4954).
SENDER_NOT_OWNED = "553 5.7.1 <{}>: Sender address rejected: not owned by user {}"
RATE_LIMITED = "450 4.7.1 Error: too many messages from {} ({} per hour); try again later"
AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_FAILED = "535 5.7.8 Error: authentication failed"
AUTH_UNAVAILABLE = "454 4.7.0 Temporary authentication failure; try again later"
