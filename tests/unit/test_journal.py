"""Journal: group commit, rotation, recovery of a torn tail, refusal of damage."""

import asyncio
import os

import pytest

from mailnode.journal import Journal, JournalDamaged, JournalError
from mailnode.journal.format import iter_frames, list_segments
from mailnode.proto.journal_pb2 import JournalRecord


def accepted(i: int, size: int = 100) -> JournalRecord:
    r = JournalRecord()
    r.message_accepted.queue_id = f"q{i}"
    r.message_accepted.data = bytes([65 + i % 26]) * size
    return r


def write(directory, n, *, segment_size=1 << 20, size=100):
    batches = []

    async def main():
        j = Journal(
            directory, segment_size=segment_size, on_batch=lambda r, b, s: batches.append(r)
        )
        j.open()
        j.allow_writes(j.epoch)
        j.start(asyncio.get_running_loop())
        lsns = await asyncio.gather(*(j.append(accepted(i, size)) for i in range(n)))
        j.close()
        return lsns

    return asyncio.run(main()), batches


def test_group_commit_shares_fsyncs_and_survives_reopen(tmp_path):
    lsns, batches = write(str(tmp_path), 500)
    assert lsns == sorted(lsns) and len(set(lsns)) == 500
    assert sum(batches) == 500
    assert len(batches) < 500  # concurrent appends shared fdatasyncs
    frames = list(iter_frames(str(tmp_path)))
    assert [f.record.message_accepted.queue_id for f in frames] == [f"q{i}" for i in range(500)]
    assert [f.lsn for f in frames] == lsns


def test_rotation_names_segments_by_first_lsn(tmp_path):
    lsns, _ = write(str(tmp_path), 100, segment_size=4096, size=1000)
    segs = list_segments(str(tmp_path))
    assert len(segs) > 10
    assert all(base in lsns for base, _ in segs)
    assert all(os.path.getsize(p) <= 4096 for _, p in segs[:-1])
    lsns2, _ = write(str(tmp_path), 10, segment_size=4096, size=1000)
    assert lsns2[0] > lsns[-1]
    assert len(list(iter_frames(str(tmp_path)))) == 110


def test_torn_tail_is_cut_back(tmp_path, caplog):
    write(str(tmp_path), 20)
    _, last = list_segments(str(tmp_path))[-1]
    full = os.path.getsize(last)
    with open(last, "r+b") as f:
        f.truncate(full - 30)  # the last record's write was cut short
    j = Journal(str(tmp_path))
    rec = j.open()
    j.close()
    assert rec.truncated_bytes > 0
    assert "torn tail" in caplog.text
    assert len(list(iter_frames(str(tmp_path)))) == 19


def test_damage_in_middle_is_refused_naming_file_and_offset(tmp_path):
    write(str(tmp_path), 50, segment_size=2048, size=300)
    segs = list_segments(str(tmp_path))
    _base, middle = segs[len(segs) // 2]
    with open(middle, "r+b") as f:
        f.seek(40)
        f.write(b"\xff\xff\xff")
    with pytest.raises(JournalDamaged) as e:
        Journal(str(tmp_path)).open()
    assert e.value.path == middle
    assert "checksum" in e.value.reason or "magic" in e.value.reason


def test_damage_in_last_segment_followed_by_good_records_is_refused(tmp_path):
    write(str(tmp_path), 20)
    _, last = list_segments(str(tmp_path))[-1]
    with open(last, "r+b") as f:
        f.seek(200)
        f.write(b"\x00" * 8)
    with pytest.raises(JournalDamaged):
        Journal(str(tmp_path)).open()


def test_second_opener_is_refused(tmp_path):
    j = Journal(str(tmp_path))
    j.open()
    try:
        with pytest.raises(JournalError, match="in use"):
            Journal(str(tmp_path)).open()
    finally:
        j.close()


def test_new_directories_are_synced_into_their_parents(tmp_path, monkeypatch):
    """F13: a journal's directory made at start-up is made durable in its parent, and
    in each new ancestor's parent, before anything is written into it."""
    from mailnode import durable as jmod

    synced = []
    real = jmod.fsync_dir
    monkeypatch.setattr(
        jmod, "fsync_dir", lambda p: (synced.append(os.path.relpath(p, tmp_path)), real(p))
    )
    j = Journal(str(tmp_path / "shards" / "0" / "journal"))
    j.open()
    j.close()
    assert synced[:3] == [".", "shards", os.path.join("shards", "0")]
    synced.clear()
    jmod.makedirs_synced(str(tmp_path / "shards" / "0" / "journal"))  # nothing new: nothing to sync
    assert synced == []
