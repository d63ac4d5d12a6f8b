"""durable.write_atomic under concurrent writers, and the sweep of what a crash left."""

from __future__ import annotations

import os
import threading

from mailnode.durable import sweep_tmp, write_atomic


def test_two_threads_replacing_one_file_never_fail_and_leave_one_whole_version(tmp_path):
    path = str(tmp_path / "role.json")
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(tag: bytes) -> None:
        start.wait()
        try:
            for _ in range(200):
                write_atomic(path, tag * 1000)
        except BaseException as e:  # what the demote task hit with one shared tmp name
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in (b"a", b"b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with open(path, "rb") as f:
        assert f.read() in (b"a" * 1000, b"b" * 1000)
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []


def test_sweep_removes_only_leftover_temporary_files(tmp_path):
    (tmp_path / "role.json").write_bytes(b"{}")
    (tmp_path / "role.json.123-456.tmp").write_bytes(b"{")
    (tmp_path / "maildir.tmp").mkdir()  # a directory is never swept
    sweep_tmp(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["maildir.tmp", "role.json"]
