# Sourced by the on-call wrappers: which mailctl to run. $MAILCTL if set, else the one
# on PATH, else this checkout's project environment (.venv, made by scripts/install-deps).
if [ -z "${MAILCTL:-}" ]; then
    MAILCTL=$(command -v mailctl || true)
    [ -n "$MAILCTL" ] || MAILCTL="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/mailctl"
fi
if [ ! -x "$MAILCTL" ]; then
    echo "$(basename "$0"): no mailctl (not on PATH, no $MAILCTL); run scripts/install-deps or '. .venv/bin/activate'" >&2
    exit 2
fi
