"""The one mailctl runner: every test runs the CLI through mailctl()."""

from __future__ import annotations

import subprocess
import sys

# The CLI's module, named once (run as ``python -m MAILCTL_MODULE``).
MAILCTL_MODULE = "mailctl"


def mailctl(
    *args: str, check: bool = True, input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run mailctl with these arguments; with check, a non-zero exit fails the test."""
    r = subprocess.run(
        [sys.executable, "-m", MAILCTL_MODULE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )
    if check and r.returncode != 0:
        raise AssertionError(
            f"mailctl {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        )
    return r
