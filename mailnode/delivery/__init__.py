"""Outbound delivery: the queue (derived from the journal) and the engine that
works it on a shard's primary."""
