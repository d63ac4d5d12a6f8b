#!/usr/bin/env bash
# Role-change hook: put this node's server in an HAProxy backend of shard N into
# "ready" when it becomes primary and into "maint" otherwise, over HAProxy's
# runtime API. Set MAILCLUSTER_HAPROXY_SOCKET (default /run/haproxy/admin.sock)
# and name servers "<node>" in backends "smtp_shard<N>" (see deploy/haproxy.cfg).
set -euo pipefail
sock=${MAILCLUSTER_HAPROXY_SOCKET:-/run/haproxy/admin.sock}
state=maint
[ "$MAILCLUSTER_ROLE" = primary ] && state=ready
cmd="set server smtp_shard${MAILCLUSTER_SHARD}/${MAILCLUSTER_NODE} state ${state}"
if command -v socat >/dev/null; then
    echo "$cmd" | socat stdio "unix-connect:$sock"
else
    echo "socat is needed to talk to $sock" >&2
    exit 1
fi
echo "haproxy: $cmd"
