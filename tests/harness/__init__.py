"""The test harness (in the way of kazoo.testing): real processes on loopback for tests.

    wait        wait_for: poll a predicate until a deadline
    addresses   the one loopback allocation (a per-run block derived from the pid)
    processes   the registry of started processes and their logs (dumped on failure)
    toml        the TOML writer for test configs
    certs       a self-signed certificate
    mailctl     the one mailctl runner (MAILCTL_MODULE)
    node        Node: a `mailnode` process
    cluster     Cluster (ZooKeeper root, nodes, coordinators), the ensemble, local clusters
    archive     Archive: a `mailnode archive` process
    load        bench/loadgen.py as a process, and what it got stored
    mail        client-side helpers: POP3, raw SMTP
    mx          loopback stand-ins for the remote side: SMTP sink, DNS server
    partition   network partitions between node processes, a retrying sender

tests/ is on sys.path (pyproject's [tool.pytest.ini_options] pythonpath), so tests
import ``from harness.node import Node``; nothing imports conftest or a test module.
"""

from __future__ import annotations

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOMAIN = "example.test"
PASSWORD = "correct horse"
