"""What both ends of a gRPC link must agree on, named once.

Metadata keys, message-size limits and channel options, and the secret files
(the admin token, the cluster secret) whose contents ride in that metadata.
Both the servers and their clients (mailctl, the router, the shipper, restore)
import this small module, so a client never has to import a server to learn a
key's name.
"""

from __future__ import annotations

import os
import secrets
from typing import TYPE_CHECKING, NoReturn, Protocol

if TYPE_CHECKING:
    import grpc

# Metadata keys.
TOKEN_KEY = "x-mailcluster-token"  # admin calls (mailctl)
SECRET_KEY = "x-mailcluster-cluster"  # node-to-node calls (replication, front end)

# A message is one gRPC message (commit, snapshot chunk, archived segment); the
# default 4 MiB is below [smtp] max_message_size.
MAX_MESSAGE = 64 << 20
CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
)
SERVER_OPTIONS = CHANNEL_OPTIONS


class ServicerContext(Protocol):
    """What a servicer uses of grpc.aio.ServicerContext (grpc ships no types): abort()
    raises, so code after it sees what the check before it ruled out."""

    async def abort(self, code: grpc.StatusCode, details: str = "") -> NoReturn: ...


class SecretFileError(Exception):
    """A secret file that cannot be read, or is too short to be a secret."""


def read_secret(path: str, *, min_length: int = 16) -> str:
    """The stripped contents of a secret file; SecretFileError names the file."""
    try:
        with open(path) as f:
            secret = f.read().strip()
    except OSError as e:
        raise SecretFileError(f"{path}: {e.strerror}") from None
    if len(secret) < min_length:
        raise SecretFileError(f"{path}: need at least {min_length} characters")
    return secret


def ensure_secret(path: str) -> str:
    """Create a fresh random secret file (mode 0600) unless one exists; return its contents."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
    return read_secret(path)


def token_path(data_dir: str) -> str:
    return os.path.join(data_dir, "admin.token")
