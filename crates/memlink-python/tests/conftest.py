import itertools
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

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

    def line(self):
        """The child's next output line (fails if it exits first)."""
        # readline blocks; the child scripts all bound their own waits, and
        # `finish` kills a child that outlives DEADLINE.
        out = self.proc.stdout.readline()
        if not out:
            self.proc.kill()
            _, err = self.proc.communicate()
            pytest.fail(f"child exited early: {self.proc.returncode}\n{err}")
        return out.rstrip("\n")

    def say(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def finish(self, check=True):
        try:
            out, err = self.proc.communicate(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            pytest.fail(f"child did not finish in {DEADLINE} s\n{err}")
        if check:
            assert self.proc.returncode == 0, err
        return out


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
            c.proc.communicate()


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
