"""``mailcoordinator``: placeholder until the cluster issue builds coordinators."""

import sys


def main(argv: list[str] | None = None) -> int:
    print("mailcoordinator: coordinators are not built yet (single-node release)", file=sys.stderr)
    return 2
