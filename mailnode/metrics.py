"""Prometheus metrics of a mail node (served on the HTTP listener's /metrics)."""

from prometheus_client import Counter, Gauge, Histogram

SMTP_ACCEPTED = Counter(
    "mailcluster_smtp_messages_accepted_total", "Messages answered 250 after DATA"
)
SMTP_REJECTED = Counter(
    "mailcluster_smtp_rejected_total", "Transactions or commands refused, by reason", ["reason"]
)
SMTP_SESSIONS = Gauge("mailcluster_smtp_sessions", "Open SMTP sessions")
COMMIT_SECONDS = Histogram(
    "mailcluster_commit_seconds",
    "From end of DATA to every shard's commit",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
FSYNC_BATCH = Histogram(
    "mailcluster_journal_fsync_batch_records",
    "Records made durable by one fdatasync (group commit)",
    ["shard"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
FSYNC_SECONDS = Histogram(
    "mailcluster_journal_fsync_seconds",
    "Time to write and fdatasync one batch",
    ["shard"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1),
)
JOURNAL_BYTES = Gauge(
    "mailcluster_journal_bytes", "Bytes in the shard's journal segments", ["shard"]
)
JOURNAL_SEGMENTS = Gauge(
    "mailcluster_journal_segments", "Segment files of the shard's journal", ["shard"]
)
JOURNAL_COMMITTED_LSN = Gauge(
    "mailcluster_journal_committed_lsn", "Durable end of the journal", ["shard"]
)
STORE_COMMIT_SECONDS = Histogram(
    "mailcluster_store_commit_seconds",
    "One commit of the shard index: the Maildir sync and the SQLite commit of an applied batch",
    ["shard"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
# Per shard, not per user: a gauge per mailbox would be millions of series.
QUOTA_REFUSALS = Counter(
    "mailcluster_quota_refusals",
    "Recipients refused because their mailbox is over its storage or message quota (452 4.2.2)",
    ["shard"],
)
APPLIED_LSN = Gauge(
    "mailcluster_store_applied_lsn", "Journal position applied to the Maildir store", ["shard"]
)
DELIVERIES = Counter(
    "mailcluster_deliveries_total", "Message copies delivered into mailboxes", ["shard"]
)
POP3_SESSIONS = Counter("mailcluster_pop3_sessions_total", "POP3 sessions started")
POP3_ACTIVE = Gauge("mailcluster_pop3_sessions_active", "POP3 sessions open")
POP3_LOGIN_FAILURES = Counter("mailcluster_pop3_login_failures_total", "Rejected POP3 logins")
POP3_RETRIEVED_BYTES = Counter("mailcluster_pop3_retrieved_bytes_total", "Octets sent by RETR/TOP")
IMAP_CONNECTIONS = Gauge(
    "mailcluster_imap_connections", "IMAP connections open on this node's listeners"
)
IMAP_SESSIONS = Gauge(
    "mailcluster_imap_sessions", "Logged-in IMAP sessions served by this node (primary side)"
)
IMAP_LOGIN_FAILURES = Counter("mailcluster_imap_login_failures_total", "Rejected IMAP logins")
IMAP_COMMANDS = Counter(
    "mailcluster_imap_commands_total", "IMAP commands answered", ["command", "result"]
)
SYNC_WAITING = Gauge(
    "mailcluster_replication_commits_waiting",
    "Commits waiting for a spare's acknowledgement",
    ["shard"],
)
DEGRADED_COMMITS = Counter(
    "mailcluster_replication_degraded_commits_total",
    "Commits answered without a spare's acknowledgement under the sync policy",
    ["shard"],
)
IN_SYNC_SPARES = Gauge(
    "mailcluster_replication_in_sync_spares", "Spares in the in-sync set", ["shard"]
)
SPARE_LAG_BYTES = Gauge(
    "mailcluster_replication_lag_bytes",
    "Journal bytes a spare has not acknowledged",
    ["shard", "spare"],
)
SPARE_LAG_SECONDS = Gauge(
    "mailcluster_replication_lag_seconds",
    "Seconds since a spare was last caught up",
    ["shard", "spare"],
)
SALVAGED = Counter(
    "mailcluster_replication_salvaged_messages_total",
    "Messages a demoted primary re-submitted to the new primary",
    ["shard"],
)
SHARD_ROLE = Gauge(
    "mailcluster_shard_primary", "1 when this node is the shard's primary", ["shard"]
)
SHARD_EPOCH = Gauge("mailcluster_shard_epoch", "The shard's epoch as this node knows it", ["shard"])
FAILOVER_SECONDS = Histogram(
    "mailcluster_failover_seconds",
    "From a coordinator deciding a failover to the new primary's epoch record being durable",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
ZK_CONNECTED = Gauge(
    "mailcluster_zookeeper_connected", "1 while the node's ZooKeeper session is connected"
)
HOOKS_RUN = Counter("mailcluster_role_hooks_total", "Role-change hooks that ran and succeeded")
HOOK_FAILURES = Counter(
    "mailcluster_role_hook_failures_total", "Role-change hooks that failed, hung or could not start"
)
ROUTED = Counter(
    "mailcluster_frontend_routed_total", "Commits routed to a shard's primary", ["shard", "where"]
)
HELD = Counter(
    "mailcluster_frontend_held_total",
    "Transactions held while their shard had no reachable primary",
    ["shard"],
)
HOLD_SECONDS = Histogram(
    "mailcluster_frontend_hold_seconds",
    "How long held transactions waited",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30),
)

# Delivery queue (on a shard's primary; spares report their derived copy too).
QUEUE_DEPTH = Gauge(
    "mailcluster_queue_messages",
    "Queued messages by state (active = due now, deferred, held)",
    ["shard", "state"],
)
QUEUE_OLDEST = Gauge(
    "mailcluster_queue_oldest_age_seconds", "Age of the oldest queued message", ["shard"]
)
DELIVERY_ATTEMPTS = Counter(
    "mailcluster_delivery_attempts_total",
    "Recipient delivery attempts by result (delivered, deferred, bounced, expired)",
    ["result"],
)
BOUNCES = Counter(
    "mailcluster_delivery_bounces_total", "DSNs queued (bounces and delay warnings)", ["kind"]
)
DEFERRALS = Counter(
    "mailcluster_delivery_deferrals_total", "Deferred recipients by destination", ["destination"]
)
SUBMISSION_RATE_LIMITED = Counter(
    "mailcluster_submission_rate_limited_total",
    "Submission transactions refused by a rate limit",
    ["limit"],
)

# Shipping to the remote site's archive (on a shard's primary).
ARCHIVE_SHIPPED_LSN = Gauge(
    "mailcluster_archive_shipped_lsn", "Journal position the archive acknowledged", ["shard"]
)
ARCHIVE_LAG_BYTES = Gauge(
    "mailcluster_archive_lag_bytes", "Committed journal bytes the archive does not hold", ["shard"]
)
ARCHIVE_LAG_SECONDS = Gauge(
    "mailcluster_archive_lag_seconds",
    "Seconds since the archive last held everything committed",
    ["shard"],
)
ARCHIVE_ERRORS = Counter(
    "mailcluster_archive_shipping_errors_total",
    "Shipping streams that failed, by kind",
    ["shard", "kind"],
)
ARCHIVE_GAPS = Counter(
    "mailcluster_archive_gaps_total",
    "Times the archive held less than was acknowledged before (re-shipped from the journal)",
    ["shard"],
)
ARCHIVE_REMOVED_SEGMENTS = Counter(
    "mailcluster_journal_removed_segments_total",
    "Journal segments removed once archived and held by every spare",
    ["shard"],
)
