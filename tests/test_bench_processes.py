"""bench/processes.py: how the benchmarks and the tests find a server's processes through /proc.
The servers it starts are used, and so checked, by every test module that serves."""

import os
import socket
from pathlib import Path

import pytest

from bench import processes

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc")


def test_a_descriptor_that_closes_while_it_is_read_does_not_hide_its_process(monkeypatch):
    """A worker loading its models or closing connections loses descriptors between the listing of
    /proc/<pid>/fd and their readlink; the count of workers (the kill phase's "workers_after") must
    not lose the worker with them. Here this process's first descriptors vanish that way."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert os.getpid() in processes.listening_pids(port)
        readlink, ours = os.readlink, f"/proc/{os.getpid()}/fd/"

        def closing_meanwhile(path, *args, **kwargs):
            name = str(path)
            if name.startswith(ours) and int(name[len(ours) :]) < listener.fileno():
                raise FileNotFoundError(name)
            return readlink(path, *args, **kwargs)

        monkeypatch.setattr(processes.os, "readlink", closing_meanwhile)
        assert os.getpid() in processes.listening_pids(port)
