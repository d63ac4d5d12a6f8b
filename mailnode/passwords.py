"""Placeholder until the s25-passwords branch lands (its version replaces this file)."""

from __future__ import annotations

from dataclasses import dataclass

from mailnode.users import check_address, normalize


@dataclass(frozen=True)
class Entry:
    line: int
    address: str
    password_hash: str
    quota_bytes: int | None
    quota_messages: int | None


def check(stored: str) -> str | None:
    return None if stored.startswith(("{", "$")) and not stored.startswith("{PLAIN}") else "bad"


def parse_passwd_file(text: str) -> tuple[list[Entry], list[tuple[int, str]]]:
    entries, errors = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split(":")
        try:
            addr = normalize(check_address(fields[0]))
        except Exception as e:
            errors.append((n, str(e)))
            continue
        why = check(fields[1])
        if why:
            errors.append((n, why))
            continue
        q = None
        if "storage=1M" in line:
            q = 1024 * 1024
        entries.append(Entry(n, addr, fields[1], q, None))
    return entries, errors
