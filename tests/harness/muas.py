"""Real mail programs (curl, fetchmail, mutt) as test clients: finding them, running
them with a deadline and a report of what they printed, and mutt on a tmux screen."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess

import pytest

from harness.wait import wait_for

# The Debian package of each program (scripts/install-deps installs them).
PACKAGES = {"curl": "curl", "fetchmail": "fetchmail", "mutt": "mutt", "tmux": "tmux"}


def need(program: str) -> str:
    """The path of a mail program; a missing one fails the test (it is never skipped)."""
    path = shutil.which(program)
    if path is None:
        pytest.fail(
            f"{program} is not installed: scripts/install-deps installs it "
            f"(apt-get install {PACKAGES.get(program, program)})",
            pytrace=False,
        )
    return path


def report(p: subprocess.CompletedProcess) -> str:
    """What a finished program did, for an assertion message."""

    def text(data) -> str:
        if isinstance(data, bytes):
            data = data.decode(errors="replace")
        return (data or "")[-6000:]

    return (
        f"$ {shlex.join(str(a) for a in p.args)}\nexit {p.returncode}\n"
        f"--- stdout ---\n{text(p.stdout)}\n--- stderr ---\n{text(p.stderr)}"
    )


def run(argv: list[str], *, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """Run a program to its end (bytes out), failing the test with its output if it
    outlives the deadline."""
    try:
        return subprocess.run(
            argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw
        )
    except subprocess.TimeoutExpired as e:
        p = subprocess.CompletedProcess(argv, "timeout", e.stdout, e.stderr)
        raise AssertionError(f"{argv[0]} still running after {timeout}s:\n{report(p)}") from None


EXITED_WITH = "[tmux pane: exited with status "


class Tmux:
    """A tmux server of its own (its own socket, no user config) running one program in
    a session of a fixed size; the screen is read with capture-pane."""

    def __init__(self, directory: str, name: str, env: dict[str, str]):
        self.socket = os.path.join(directory, f"tmux-{name}.sock")
        self.name = name
        self.env = env
        self.tmux = need("tmux")

    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        p = run([self.tmux, "-S", self.socket, "-f", "/dev/null", *args], timeout=15, env=self.env)
        if check and p.returncode != 0:
            raise AssertionError(f"tmux failed:\n{report(p)}")
        return p

    def start(self, command: str, width: int = 200, height: int = 50) -> None:
        """Run a shell command in the session; when it ends, the pane shows
        EXITED_WITH and its exit status (see exit_status)."""
        command = f'{command}; echo "{EXITED_WITH}$?]"'
        # Panes stay when their program ends (to read the last screen), set before the
        # session starts: one tmux invocation, its commands separated by ";".
        self._tmux(
            *("start-server", ";", "set-option", "-wg", "remain-on-exit", "on", ";"),
            *("new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height)),
            command,
        )

    def exit_status(self, timeout: float = 15) -> int:
        """Wait for the program to end; its exit status (as the pane shows it)."""
        screen = self.wait(lambda s: EXITED_WITH in s, "the program to end", timeout)
        return int(re.search(re.escape(EXITED_WITH) + r"(\d+)", screen).group(1))

    def screen(self) -> str:
        p = self._tmux("capture-pane", "-p", "-t", self.name, check=False)
        if p.returncode != 0:
            return f"(no pane: {p.stderr.decode(errors='replace').strip()})"
        return p.stdout.decode(errors="replace")

    def dead(self) -> bool:
        """Whether the command in the pane has ended (the pane stays: remain-on-exit).
        (tmux's own #{pane_dead_status} can lag: it sees the pty close before it reaps
        the child; hence the status the command prints.)"""
        p = self._tmux("display-message", "-p", "-t", self.name, "#{pane_dead}", check=False)
        return p.returncode != 0 or p.stdout.strip() == b"1"

    def keys(self, *keys: str, literal: bool = False) -> None:
        self._tmux("send-keys", "-t", self.name, *(["-l"] if literal else []), *keys)

    def type(self, text: str) -> None:
        self.keys(text, literal=True)

    def wait(self, predicate, what: str, timeout: float = 20) -> str:
        """Poll the screen until predicate(screen) holds; fail showing the last screen
        (at once if the program has ended)."""
        seen = [""]

        def ready():
            dead = self.dead()  # before the capture: a dead pane's screen is final
            seen[0] = self.screen()
            if predicate(seen[0]):
                return seen[0]
            if dead:
                raise AssertionError(f"the program ended while waiting for {what}")
            return None

        try:
            return wait_for(ready, timeout, interval=0.1, what=what)
        except AssertionError as e:
            screen = re.sub(r"\n\s*\n(\s*\n)+", "\n(blank lines)\n", seen[0])
            raise AssertionError(f"{e}; the screen:\n{'-' * 60}\n{screen}\n{'-' * 60}") from None

    def kill(self) -> None:
        self._tmux("kill-server", check=False)
