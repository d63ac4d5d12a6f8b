"""Mailbox addresses and their shard (password hashes: ``mailnode.passwords``)."""

from __future__ import annotations

import hashlib
import re

from mailnode.errors import Refused

# RFC 5321 dot-atom local part; no quoted strings for mailbox names we create.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"^{_ATOM}(\.{_ATOM})*$")
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)


class AddressError(Refused, ValueError):
    """An address that is not a mailbox address (what is wrong, in words)."""


def normalize(address: str) -> str:
    return address.strip().lower()


def check_address(address: str) -> str:
    """The normalised mailbox address, or AddressError saying what is wrong."""
    addr = normalize(address)
    local, sep, domain = addr.rpartition("@")
    if not sep or not local or not domain:
        raise AddressError(f"{address!r} is not an address of the form local@domain")
    if len(local) > 64 or not _LOCAL.match(local):
        raise AddressError(
            f"{address!r}: the local part must be a dot-atom of at most 64 characters"
        )
    if not _DOMAIN.match(domain):
        raise AddressError(f"{address!r}: {domain!r} is not a valid domain name")
    return addr


def shard_of(address: str, shards: int) -> int:
    """Stable mailbox -> shard map: a hash of the lower-cased address."""
    digest = hashlib.blake2b(
        normalize(address).encode("utf-8", "surrogateescape"), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") % shards
