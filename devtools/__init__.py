"""Development tooling, not part of a production node: a loopback ZooKeeper ensemble
(zkserver) and the whole cluster on loopback (localcluster, ``mailctl local``)."""
