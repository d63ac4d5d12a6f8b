"""Coordination.register when our earlier session's member znode expires between the
create that finds it and the read that checks its owner (seen in a chaos run: the node
exited at start-up with NoNode): it is created again, not raised."""

from __future__ import annotations

from coordinator.model import Coordination, NodeExists, NoNode


class _ZK:
    """Answers the calls register makes like ZooKeeper would in that race."""

    client_id = (42, b"")

    def __init__(self):
        self.calls: list[str] = []
        self.exists = True

    def __getattr__(self, name: str):
        method = name.removesuffix("_async")

        def call(*args, **kwargs):
            self.calls.append(method)
            return _Result(self, method)

        return call


class _Result:
    def __init__(self, zk: _ZK, method: str):
        self.zk, self.method = zk, method

    def get(self, timeout=None):
        if self.method == "create" and self.zk.exists:
            raise NodeExists("exists")
        if self.method == "get":
            self.zk.exists = False  # the old session's znode went meanwhile
            raise NoNode("gone")
        return None


def test_a_member_znode_gone_between_create_and_get_is_created_again(monkeypatch):
    zk = _ZK()
    c = Coordination(zk, "/mc")  # type: ignore[arg-type]
    monkeypatch.setattr(c, "_call", lambda m, *a, **k: getattr(zk, m + "_async")(*a, **k).get())
    c.register("node1", {"grpc": "x"})
    assert zk.calls == ["create", "get", "create"]
