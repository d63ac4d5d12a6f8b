"""The remote site: the archive process (server), shipping from shard primaries
(shipper), mTLS credentials (tls), and backup/restore tools (restore)."""
