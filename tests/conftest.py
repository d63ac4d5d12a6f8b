"""Fixtures and hooks only; the helpers are in the harness package (tests/harness)."""

from __future__ import annotations

import os

import pytest
from harness import DOMAIN, addresses, processes
from harness.archive import Archive
from harness.cluster import Cluster, start_ensemble
from harness.node import Node

UNIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "unit")

# (test, log name, log path) of every Traceback a product log got during a test.
_tracebacks: list[tuple[str, str, str]] = []


# -- hooks ----------------------------------------------------------------------------
def pytest_collection_modifyitems(config, items):
    """Every test outside tests/unit starts real processes: marked slow."""
    for item in items:
        if not str(item.path).startswith(UNIT + os.sep):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    if rep.when in ("setup", "call") and rep.failed:
        # The tail of every log a process started for this test (or the session) wrote.
        for title, text in processes.tails():
            rep.sections.append((title, text))
        for name, path, text in processes.tracebacks():
            rep.sections.append((f"Traceback in the log of {name} ({path})", text))
    if rep.when == "teardown":
        if item.get_closest_marker("expect_log_traceback") is None:
            for name, path, _ in processes.tracebacks():
                _tracebacks.append((item.nodeid, name, path))
        processes.end_test()


def pytest_terminal_summary(terminalreporter):
    if _tracebacks:
        terminalreporter.section("Traceback in product logs")
        for nodeid, name, path in _tracebacks:
            terminalreporter.line(f"{nodeid}: {name} ({path})")


# -- fixtures -------------------------------------------------------------------------
@pytest.fixture
def make_node(tmp_path):
    nodes: list[Node] = []

    secret = tmp_path / "cluster.secret"
    if not secret.exists():
        secret.write_text("test-cluster-secret-0123456789\n")

    def make(**extra) -> Node:
        d = tmp_path / f"node{len(nodes)}"
        d.mkdir()
        node = Node(str(d), addresses.node_ip(), extra)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.stop()


@pytest.fixture
def node(make_node):
    """A running node with two shards and users alice and bob."""
    n = make_node()
    n.start()
    n.add_user(f"alice@{DOMAIN}")
    n.add_user(f"bob@{DOMAIN}")
    return n


@pytest.fixture(scope="session")
def ensemble(tmp_path_factory):
    """A real 3-server ZooKeeper ensemble on loopback, shared by the cluster tests."""
    e = start_ensemble(tmp_path_factory.mktemp("zk"), session=True)
    yield e
    e.stop()


@pytest.fixture
def cluster(ensemble, make_node, tmp_path):
    c = Cluster(ensemble, make_node, tmp_path)
    yield c
    c.stop()


@pytest.fixture
def certs(tmp_path):
    from mailnode.tls import make_ca

    return make_ca(str(tmp_path / "pki"), ["archive", "node", "intruder"])


@pytest.fixture
def archive(tmp_path, certs):
    d = tmp_path / "archive"
    d.mkdir()
    a = Archive(d, certs)
    a.start()
    yield a
    a.stop()
