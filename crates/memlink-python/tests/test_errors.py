import pytest

import memlink


@pytest.mark.parametrize(
    "cls, builtin",
    [
        (memlink.NotFound, FileNotFoundError),
        (memlink.AlreadyExists, FileExistsError),
        (memlink.PermissionDenied, PermissionError),
        (memlink.ReadOnly, PermissionError),
        (memlink.Timeout, TimeoutError),
        (memlink.InvalidName, ValueError),
        (memlink.InvalidArgument, ValueError),
        (memlink.WrongKind, TypeError),
        (memlink.Unsupported, NotImplementedError),
        (memlink.WouldDeadlock, RuntimeError),
        (memlink.InUse, OSError),
        (memlink.OsError, OSError),
    ],
)
def test_hierarchy(cls, builtin):
    assert issubclass(cls, memlink.Error) and issubclass(cls, builtin)


def test_not_found(name):
    with pytest.raises(FileNotFoundError) as info:
        memlink.Region.open(name)
    e = info.value
    assert isinstance(e, memlink.NotFound)
    assert str(e) == f'cannot open region "{name}": not found'
    assert (e.kind, e.operation, e.object_kind, e.object_name) == ("NotFound", "open", "region", name)
    assert e.errno == 2 and e.filename == name


def test_already_exists(name):
    region = memlink.Region.create(name, 4096)
    with pytest.raises(memlink.AlreadyExists):
        memlink.Region.create(name, 4096)
    with pytest.raises(FileExistsError):
        memlink.Mutex.create(name)
    del region


def test_invalid_arguments(name):
    with pytest.raises(memlink.InvalidArgument):
        memlink.Region.create(name, 0)
    with pytest.raises(memlink.InvalidName):
        memlink.Region.create("bad/name", 4096)
    with pytest.raises(ValueError):
        memlink.Region.create("x" * (memlink.MAX_NAME_LEN + 1), 4096)
    region = memlink.Region.create(name, 4096)
    with pytest.raises(memlink.InvalidArgument):
        region.map(offset=4000, length=200)
    with pytest.raises(ValueError):
        memlink.Event.create(name + "-e").wait(timeout=-1)


def test_wrong_kind(name):
    region = memlink.Region.create(name, 4096)
    with pytest.raises(memlink.WrongKind):
        memlink.Mutex.open(name)
    del region


def test_permission_denied(name, child):
    import os
    import subprocess
    import sys

    if os.geteuid() != 0:
        pytest.skip("needs root to run a child as nobody")
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable]
    probe = subprocess.run([*as_nobody, "-c", "import memlink"], capture_output=True, timeout=20)
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot run this interpreter with memlink: {probe.stderr[-200:]!r}")
    region = memlink.Region.create(name, 4096, mode=0o600)
    done = subprocess.run(
        [*as_nobody, "-c",
         "import sys, memlink\n"
         "try:\n memlink.Region.open(sys.argv[1])\n"
         "except PermissionError as e:\n print(type(e).__name__)\n",
         name],
        capture_output=True, text=True, timeout=20,
    )
    assert done.stdout.strip() == "PermissionDenied", done.stderr
    del region


def test_closed_objects_say_so(name):
    region = memlink.Region.create(name, 4096)
    region.close()
    with pytest.raises(ValueError, match="closed"):
        region.map()
    region.close()


def test_help_reads_well():
    doc = memlink.Region.__doc__
    assert "named shared-memory region" in doc
    assert "Creates a region" in memlink.Region.create.__doc__
    assert "buffer protocol" in memlink.View.__doc__
    assert memlink.Subscriber.recv.__doc__ and memlink.Publisher.send.__doc__
