"""The node's view of the cluster: its presence and assignments in ZooKeeper (agent;
``Standalone`` without ZooKeeper) and the routing of each shard's work to its current
primary, holding through failovers (router)."""
