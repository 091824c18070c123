import itertools
import os
import pathlib
import queue
import shutil
import subprocess
import sys
import textwrap
import threading

import pytest

# Every wait in these tests has a deadline; this is the usual one.
DEADLINE = 20

_counter = itertools.count()


@pytest.fixture
def name(request):
    """A name no other test (or test run) uses."""
    test = request.node.name.replace("[", "-").replace("]", "")[:40]
    return f"mlpy-{os.getpid()}-{next(_counter)}-{test}"


class Child:
    """A Python child process running `code`, talking over lines."""

    def __init__(self, code, *args):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # A thread reads the lines, so that waiting for one has a deadline.
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for out in self.proc.stdout:
            self.lines.put(out)
        self.lines.put(None)

    def line(self):
        """The child's next output line (fails if it exits first, or if
        none comes within DEADLINE)."""
        try:
            out = self.lines.get(timeout=DEADLINE)
        except queue.Empty:
            out = None
        if out is None:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"no line from the child (exit status {self.proc.returncode}):\n{self.proc.stderr.read()}")
        return out.rstrip("\n")

    def say(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def finish(self, check=True):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"child did not finish in {DEADLINE} s\n{self.proc.stderr.read()}")
        err = self.proc.stderr.read()
        if check:
            assert self.proc.returncode == 0, err


@pytest.fixture
def child():
    children = []

    def start(code, *args):
        c = Child(code, *args)
        children.append(c)
        return c

    yield start
    for c in children:
        if c.proc.poll() is None:
            c.proc.kill()
            c.proc.wait()


def memlink_cli():
    """The Rust CLI: $MEMLINK_CLI, else the workspace's debug build."""
    path = os.environ.get("MEMLINK_CLI")
    if path:
        assert os.access(path, os.X_OK), f"MEMLINK_CLI={path} is not an executable"
        return path
    root = pathlib.Path(__file__).resolve().parents[3]
    for candidate in (root / "target" / "debug" / "memlink", shutil.which("memlink")):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.skip("the memlink CLI is not built (cargo build -p memlink-cli, or set MEMLINK_CLI)")
