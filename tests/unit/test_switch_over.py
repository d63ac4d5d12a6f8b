"""coordinator.decide.switch_over on plain snapshots: the request, the drain, the swap once
the target holds what the old primary committed, refusals and the timeout."""

from __future__ import annotations

import pytest

from coordinator.decide import SWITCHOVER_TIMEOUT, decide, switch_over
from coordinator.model import Cluster, Member, ShardInfo

NOW = 1000.0


def member(name: str, **shard0) -> Member:
    return Member(name, f"{name}:7070", {"shards": {"0": shard0}})


def cluster(info: ShardInfo, req: dict | None, **members: dict) -> Cluster:
    """members: name -> what it reports for shard 0 ({"lsn": ..., "drained_lsn": ...})."""
    return Cluster(
        {"shards": 1, "spares_per_shard": 1, "failover_min_interval": 30.0},
        {name: member(name, **doc) for name, doc in members.items()},
        {0: info},
        False,
        req,
        5,
    )


def shard(primary="a", spares=("b", "c"), in_sync=("b", "c"), epoch=3, **extra) -> ShardInfo:
    return ShardInfo(0, primary, tuple(spares), epoch, tuple(in_sync), 0.0, 7, extra)


def draining(target="b", since=NOW - 5, **kw) -> ShardInfo:
    return shard(draining="a", switchover_to=target, draining_since=since, **kw)


def ask(info: ShardInfo, req: dict, now: float = NOW, **members: dict):
    return switch_over(cluster(info, req, **members), info, req, now)


ALIVE = {"a": {"lsn": 900}, "b": {"lsn": 800}, "c": {"lsn": 850}}


# -- the request -----------------------------------------------------------------------------


def test_a_request_for_later_is_not_acted_on_yet():
    assert ask(shard(), {"shard": 0, "to": "b", "at": NOW + 1}, **ALIVE) is None


def test_a_request_whose_time_has_come_starts_the_drain():
    d = ask(shard(), {"shard": 0, "to": "b", "at": NOW}, **ALIVE)
    assert d.kind == "switchover" and d.shard == 0
    assert d.sentence == "draining a for a switchover of shard 0 to b"
    assert d.changes == {"draining": "a", "switchover_to": "b", "draining_since": NOW}


def test_without_a_target_the_alive_in_sync_spare_with_most_journal_is_chosen():
    d = ask(shard(), {"shard": 0}, **ALIVE)
    assert d.changes["switchover_to"] == "c"


def test_without_a_target_a_dead_in_sync_spare_is_not_chosen():
    d = ask(shard(), {"shard": 0}, a={"lsn": 9}, b={"lsn": 1})
    assert d.changes["switchover_to"] == "b"


def test_the_drain_decision_changes_nothing_else_of_the_shard():
    d = ask(shard(), {"shard": 0, "to": "b"}, **ALIVE)
    assert not {"primary", "spares", "epoch", "in_sync"} & set(d.changes)


# -- refusals ----------------------------------------------------------------------------------


def test_a_switchover_from_a_dead_primary_is_refused():
    d = ask(shard(), {"shard": 0, "to": "b"}, b={"lsn": 1}, c={"lsn": 1})
    assert d.kind == "switchover-refused" and d.changes is None
    assert d.sentence == "refused switchover of shard 0: its primary a is not alive"


def test_a_switchover_to_a_spare_out_of_sync_is_refused():
    d = ask(shard(in_sync=("c",)), {"shard": 0, "to": "b"}, **ALIVE)
    assert d.kind == "switchover-refused" and d.changes is None
    assert d.sentence == (
        "refused switchover of shard 0 to b: not an alive in-sync spare (in sync: ['c'])"
    )


def test_a_switchover_to_a_dead_in_sync_spare_is_refused():
    d = ask(shard(), {"shard": 0, "to": "b"}, a={"lsn": 9}, c={"lsn": 9})
    assert d.kind == "switchover-refused" and "to b: not an alive in-sync spare" in d.sentence


def test_a_switchover_to_the_primary_itself_is_refused():
    d = ask(shard(), {"shard": 0, "to": "a"}, **ALIVE)
    assert d.kind == "switchover-refused"


def test_a_switchover_with_no_in_sync_spare_at_all_is_refused_naming_none():
    d = ask(shard(in_sync=()), {"shard": 0}, **ALIVE)
    assert d.kind == "switchover-refused"
    assert d.sentence == (
        "refused switchover of shard 0 to a spare: not an alive in-sync spare (in sync: [])"
    )


# -- draining --------------------------------------------------------------------------------------


def test_while_the_old_primary_has_not_reported_its_drained_lsn_nothing_happens():
    assert ask(draining(), {"shard": 0, "to": "b"}, **ALIVE) is None


def test_while_the_target_is_behind_the_drained_lsn_nothing_happens():
    members = {"a": {"lsn": 900, "drained_lsn": 900}, "b": {"lsn": 899}}
    assert ask(draining(), {"shard": 0, "to": "b"}, **members) is None


@pytest.mark.parametrize("have", [900, 950])
def test_once_the_target_holds_the_drained_lsn_the_shard_is_swapped(have):
    members = {"a": {"lsn": 900, "drained_lsn": 900}, "b": {"lsn": have}, "c": {"lsn": 1}}
    d = ask(draining(), {"shard": 0, "to": "b"}, **members)
    assert d.kind == "switchover-done"
    assert d.sentence == "switched shard 0 over from a to b at epoch 4 (drained at lsn 900)"
    assert d.changes == {
        "primary": "b",
        "spares": ["c", "a"],  # the old primary becomes a spare
        "epoch": 4,
        "in_sync": [],
        "draining": None,
        "switchover_to": None,
        "last_failover": NOW,
    }


def test_a_drained_lsn_of_zero_counts_as_reported():
    members = {"a": {"lsn": 0, "drained_lsn": 0}, "b": {"lsn": 0}}
    d = ask(draining(), {"shard": 0, "to": "b"}, **members)
    assert d is not None and d.kind == "switchover-done"


def test_the_drain_keeps_its_target_when_the_request_names_none():
    members = {"a": {"lsn": 900, "drained_lsn": 900}, "b": {"lsn": 900}, "c": {"lsn": 2000}}
    d = ask(draining(target="b"), {"shard": 0}, **members)
    assert d.changes["primary"] == "b"  # not c, though c now holds more


def test_a_target_that_died_during_the_drain_is_waited_for_until_the_timeout():
    members = {"a": {"lsn": 900, "drained_lsn": 900}, "c": {"lsn": 900}}
    assert ask(draining(), {"shard": 0, "to": "b"}, **members) is None


# -- the timeout -------------------------------------------------------------------------------------


def test_a_drain_is_abandoned_after_the_timeout_and_the_old_primary_serves_again():
    since = NOW - SWITCHOVER_TIMEOUT - 0.5
    members = {"a": {"lsn": 900, "drained_lsn": 900}, "b": {"lsn": 10}}
    d = ask(draining(since=since), {"shard": 0, "to": "b"}, **members)
    assert d.kind == "switchover-refused"
    assert d.sentence == (
        "aborted switchover of shard 0: b did not catch up with a within 30s; a serves again"
    )
    assert d.changes == {"draining": None, "switchover_to": None}


def test_a_drain_of_exactly_the_timeout_is_still_waited_for():
    members = {"a": {"lsn": 900, "drained_lsn": 900}, "b": {"lsn": 10}}
    since = NOW - SWITCHOVER_TIMEOUT
    assert ask(draining(since=since), {"shard": 0, "to": "b"}, **members) is None


def test_catching_up_late_still_swaps_rather_than_aborting():
    members = {"a": {"lsn": 900, "drained_lsn": 900}, "b": {"lsn": 900}}
    d = ask(draining(since=NOW - 10 * SWITCHOVER_TIMEOUT), {"shard": 0, "to": "b"}, **members)
    assert d.kind == "switchover-done"


# -- through decide() ---------------------------------------------------------------------------------


def test_decide_hands_the_requested_shard_to_switch_over_and_nothing_else():
    info = shard(spares=("b",), in_sync=("b",))
    c = cluster(info, {"shard": 0, "to": "b", "at": NOW + 60}, a={"lsn": 1}, b={"lsn": 1})
    assert decide(c, NOW) == []  # not yet: and no other decision for that shard meanwhile
    c = cluster(info, {"shard": 0, "to": "b"}, a={"lsn": 1}, b={"lsn": 1})
    [d] = decide(c, NOW)
    assert d.kind == "switchover"


def test_decide_fails_over_a_requested_shard_whose_primary_is_dead():
    info = shard(spares=("b",), in_sync=("b",))
    [d] = decide(cluster(info, {"shard": 0, "to": "b"}, b={"lsn": 1}), NOW)
    assert d.kind == "failover" and d.changes["primary"] == "b"


def test_a_drain_whose_primary_was_replaced_by_a_failover_ends_at_once():
    # a was draining for a switchover to b, died, and b was promoted by fail_over.
    info = shard(
        primary="b",
        spares=("c", "a"),
        in_sync=(),
        epoch=4,
        draining="a",
        switchover_to="b",
        draining_since=NOW - 2,
    )
    d = ask(info, {"shard": 0, "to": "b"}, b={"lsn": 900}, c={"lsn": 900})
    assert d is not None and d.kind == "switchover-refused"
    assert d.changes == {"draining": None, "switchover_to": None}
    assert (
        d.sentence
        == "ended switchover of shard 0: a, being drained, was replaced by b in a failover"
    )
