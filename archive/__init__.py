"""The remote site's process: it keeps every shard's journal byte for byte as shard
primaries ship it (server), with its own TOML file (config); ``mailnode archive``
runs it (cli). What runs inside nodes to feed it is ``mailnode.shipping``."""
