#!/usr/bin/env bash
# Role-change hook: hold a virtual IP while this node is primary of a shard.
# Set [hooks] on_role_change = "/usr/lib/mailcluster/hooks/vip.sh" and export
# MAILCLUSTER_VIP_<shard>="10.0.0.50/24 dev eth0" in the node's environment.
# Environment given by the node: MAILCLUSTER_SHARD, MAILCLUSTER_ROLE (primary|spare|idle),
# MAILCLUSTER_EPOCH, MAILCLUSTER_NODE, MAILCLUSTER_PRIMARY, MAILCLUSTER_SMTP, MAILCLUSTER_POP3,
# MAILCLUSTER_HTTP, MAILCLUSTER_REASON.
set -euo pipefail
var="MAILCLUSTER_VIP_${MAILCLUSTER_SHARD}"
vip=${!var:-}
[ -n "$vip" ] || { echo "no $var set; nothing to do"; exit 0; }
read -r addr _ dev <<<"$vip"
if [ "$MAILCLUSTER_ROLE" = primary ]; then
    ip addr replace "$addr" dev "$dev"
    command -v arping >/dev/null && arping -c 2 -U -I "$dev" "${addr%/*}" >/dev/null 2>&1 || true
    echo "took $addr on $dev for shard $MAILCLUSTER_SHARD (epoch $MAILCLUSTER_EPOCH)"
else
    ip addr del "$addr" dev "$dev" 2>/dev/null || true
    echo "released $addr for shard $MAILCLUSTER_SHARD"
fi
