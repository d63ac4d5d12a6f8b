"""What mailctl and the primary check before a mailbox record is committed: UID sets,
sizes, flags (no processes)."""

from __future__ import annotations

import pytest

from mailctl.common import CliError
from mailctl.mailbox import parse_uids
from mailctl.users import parse_size
from mailnode.errors import Refused
from mailnode.store.commands import check_flags
from mailnode.store.mailboxes import check_folder_name


def test_uid_sets_take_single_uids_and_ranges():
    assert parse_uids("1,3,7-9") == [1, 3, 7, 8, 9]
    for bad in ("", "a", "1-", "1,,2", "-3"):
        with pytest.raises(CliError):
            parse_uids(bad)


def test_sizes_take_1024_based_suffixes():
    assert [parse_size(t) for t in ("0", "512", "1K", "2M", "1g", "3GiB")] == [
        0,
        512,
        1024,
        2 << 20,
        1 << 30,
        3 << 30,
    ]
    with pytest.raises(CliError):
        parse_size("lots")


def test_flags_are_system_flags_or_keywords():
    assert check_flags(["\\Seen", "$Label1", "Junk"]) == ["\\Seen", "$Label1", "Junk"]
    for bad in ("\\Recent", "\\Bogus", "two words", "a(b", ""):
        with pytest.raises(Refused):
            check_flags([bad])


def test_folder_names_refuse_empty_levels_and_control_characters():
    assert check_folder_name("Lists/python") is None
    assert check_folder_name("a//b") and check_folder_name("/a") and check_folder_name("")
    assert check_folder_name("x\r\ny") and check_folder_name("x" * 201)
