"""A coordinator's leadership is tied to the ZooKeeper session that won the election
(review finding F12): a coordinator whose session expired and was replaced by a new one
stops leading and contends again, instead of acting next to the new leader."""

from __future__ import annotations

import threading

from harness import DOMAIN
from harness.cluster import Cluster
from harness.wait import wait_for
from kazoo.client import KazooClient

from coordinator.coordinator import Coordinator


def expire(hosts: str, zk: KazooClient) -> None:
    """End ``zk``'s session from outside, as the ensemble does when the process was stopped
    past its timeout: a second client attaches to the session and closes it."""
    twin = KazooClient(hosts=hosts, client_id=zk.client_id, timeout=5)
    twin.start(10)
    twin.stop()
    twin.close()


def test_a_coordinator_stops_leading_when_its_session_is_replaced(ensemble, make_node, tmp_path):
    cluster = Cluster(ensemble, make_node, tmp_path)
    cluster.mailctl("init", "--shards", "1", "--domain", DOMAIN)
    c = Coordinator(
        "c-test", hosts=ensemble.connect, root=cluster.root, session_timeout=4.0, loop_interval=0.2
    )
    t = threading.Thread(target=c.run, daemon=True)
    t.start()
    try:
        wait_for(lambda: len(c.lead_sessions) == 1, 30, what="the coordinator leads")
        first = c.lead_sessions[0]
        assert first == c.zk.client_id[0]
        expire(ensemble.connect, c.zk)
        wait_for(lambda: len(c.lead_sessions) == 2, 30, what="leading again, under the new session")
        assert c.lead_sessions[1] not in (None, first)
        # The election holds exactly one contender: ours, of the new session.
        zk = KazooClient(hosts=ensemble.connect, timeout=5)
        zk.start(10)
        try:
            contenders = zk.get_children(f"{cluster.root}/election")
            owners = {zk.get(f"{cluster.root}/election/{n}")[1].ephemeralOwner for n in contenders}
        finally:
            zk.stop()
            zk.close()
        assert owners == {c.lead_sessions[1]}
    finally:
        c.stop()
        t.join(30)
        cluster.stop()
    assert not t.is_alive()
