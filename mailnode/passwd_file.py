"""Dovecot's passwd-file format, as an ISP exports its users.

One user per line::

    user:password:uid:gid:gecos:home:shell:extra_fields

Only the address, the hash and the quota rules among the extra fields
(``userdb_quota_rule=*:storage=1G``, ``quota_rule2=*:messages=10000``) mean
something here; uid, gid, home and shell belong to the old system's disks and
are ignored. Every line is checked before anything is imported, and each bad
one is reported by number, so an import is all or nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailnode.errors import Refused
from mailnode.passwords import check
from mailnode.users import check_address, normalize


@dataclass(frozen=True)
class Entry:
    line: int
    address: str
    password_hash: str
    quota_bytes: int | None  # None: the file sets no limit (the domain default applies)
    quota_messages: int | None


# Dovecot's quota sizes: a bare storage= number is kilobytes, bytes= is bytes.
_UNITS = {"": 1024, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_RULE_KEY = re.compile(r"^(userdb_)?quota_rule\d*$")
_SIZE = re.compile(r"^(\d+)([bkmgt]?)$", re.IGNORECASE)


def _quota_rule(value: str) -> tuple[str, int]:
    """("bytes"|"messages", limit) of one ``*:storage=1G`` rule (0 = no limit)."""
    mailbox, _, limits = value.partition(":")
    if mailbox != "*":
        raise ValueError(f"quota rule for one folder ({value}) is not supported; only *:")
    key, _, amount = limits.partition("=")
    key = key.strip().lower()
    if key == "messages":
        if not amount.isdigit():
            raise ValueError(f"bad message count in quota rule {value!r}")
        return "messages", int(amount)
    if key in ("storage", "bytes"):
        m = _SIZE.match(amount.strip())
        if not m:
            raise ValueError(f"bad size in quota rule {value!r} (e.g. 1G, 500M, 1024k)")
        unit = m.group(2).lower() if key == "storage" else (m.group(2).lower() or "b")
        return "bytes", int(m.group(1)) * _UNITS[unit]
    raise ValueError(f"unknown quota rule {value!r} (storage=, bytes= or messages=)")


def parse_line(number: int, line: str) -> Entry:
    fields = line.split(":", 7)
    if len(fields) < 2:
        raise ValueError("expected user:password[:uid:gid:gecos:home:shell:extra_fields]")
    try:
        address = normalize(check_address(fields[0].strip()))
    except Refused as e:
        raise ValueError(str(e)) from None
    why = check(fields[1])
    if why:
        raise ValueError(why)
    quota: dict[str, int] = {}
    for field in (fields[7] if len(fields) == 8 else "").split():
        key, _, value = field.partition("=")
        if _RULE_KEY.match(key.lower()):
            kind, limit = _quota_rule(value)
            quota[kind] = limit
    if any(v >= 2**63 for v in quota.values()):
        raise ValueError("a quota above 2^63-1 is not a limit (0 means none)")
    return Entry(number, address, fields[1], quota.get("bytes"), quota.get("messages"))


def parse_passwd_file(text: str) -> tuple[list[Entry], list[tuple[int, str]]]:
    """(entries, [(line number, why)]) of a whole file."""
    entries: list[Entry] = []
    errors: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            entry = parse_line(number, line)
        except ValueError as e:
            errors.append((number, str(e)))
            continue
        if entry.address in seen:
            errors.append((number, f"{entry.address} is also on line {seen[entry.address]}"))
            continue
        seen[entry.address] = number
        entries.append(entry)
    return entries, errors
