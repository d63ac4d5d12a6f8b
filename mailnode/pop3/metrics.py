"""Prometheus hooks for the POP3 server (the mailbox operations themselves are
mailnode.frontend.pop3's, for standalone and cluster nodes alike)."""

from __future__ import annotations

from mailnode import metrics
from mailnode.pop3.server import Pop3Metrics


class PromMetrics(Pop3Metrics):
    def session_started(self) -> None:
        metrics.POP3_SESSIONS.inc()
        metrics.POP3_ACTIVE.inc()

    def session_ended(self) -> None:
        metrics.POP3_ACTIVE.dec()

    def login_failed(self) -> None:
        metrics.POP3_LOGIN_FAILURES.inc()

    def retrieved(self, nbytes: int) -> None:
        metrics.POP3_RETRIEVED_BYTES.inc(nbytes)
