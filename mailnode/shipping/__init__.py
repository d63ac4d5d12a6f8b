"""What a node does for the remote site: ship each primary's journal to the archive
(shipper) and upload base backups of its store (backup)."""
