"""The servers that the benchmarks and the tests start and watch, defined once: `python -m service`
(or another server that answers /readyz) on a free loopback port in a process group of its own,
the wait for /readyz, its workers and their memory found through /proc, and a clean stop."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from bench.samples import BenchError

ROOT = Path(__file__).resolve().parents[1]
SERVICE = ("-m", "service", "--host", "127.0.0.1", "--port")  # `python -m service`; the port comes last
WORKER = b"_bentoml_impl.worker.service"  # in a BentoML worker's command line
INITIALIZED = "Service vision initialized"  # logged by each worker once its models are loaded


class ServerFailed(BenchError):
    """A server that stopped, or was not ready in time, in one line (its log's tail as a note)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float, alive: Callable[[], bool] = lambda: True, poll: float = 0.1) -> None:
    """Until `url`/readyz answers 200; ServerFailed once `alive()` is false or `timeout` s have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise ServerFailed(f"{url}: the server stopped before it was ready")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(poll)
    raise ServerFailed(f"{url}/readyz did not answer 200 within {timeout:.0f} s")


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process group a server was started in (start_new_session=True), so that
    BentoML drains; SIGKILL after 20 s, and to anything left in the group."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        except ProcessLookupError:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


class Server:
    """`command` (default `python -m service`, = `bentoml serve service.service:Vision`) on a free
    loopback port (or `port`), in a process group of its own, its output in `log_path`; `env` is
    added to this process's environment."""

    def __init__(
        self,
        env: dict | None,
        log_path: Path,
        timeout: float = 120.0,
        port: int | None = None,
        command: Sequence[str] = SERVICE,
        name: str = "python -m service",
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path, self.timeout, self.name = Path(log_path), timeout, name
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed by stop(), the server's whole life)
        self.process = subprocess.Popen(
            [sys.executable, *command, str(self.port)],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started = time.perf_counter()

    def wait_ready(self, poll: float = 0.1) -> float:
        """Seconds from the start until /readyz answered 200 (within `timeout` s of this call); else
        the server is stopped and ServerFailed says why, the log's tail in a note."""
        try:
            wait_ready(self.url, self.timeout, alive=lambda: self.process.poll() is None, poll=poll)
        except ServerFailed:
            code = self.process.poll()
            self.stop()
            what = f"was not ready within {self.timeout:.0f} s" if code is None else f"exited with {code}"
            failed = ServerFailed(f"{self.name} {what}: {self.last_line()}")
            failed.add_note(self.log()[-3000:])
            raise failed from None
        return time.perf_counter() - self.started

    def wait_initialized(self, starts: int | None = None, timeout: float = 60.0) -> None:
        """Until `starts` workers in all (default: as many as hold the port) have loaded their
        models: /readyz answers once one has, and a worker holds the socket seconds before."""
        deadline = time.monotonic() + timeout
        while (count := self.log().count(INITIALIZED)) < (wanted := starts or max(1, len(self.worker_pids()))):
            if time.monotonic() > deadline:
                failed = ServerFailed(
                    f"{self.name}: {count} of {wanted} workers loaded their models in {timeout:.0f} s"
                )
                failed.add_note(self.log()[-3000:])
                raise failed
            time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def last_line(self) -> str:
        lines = self.log().strip().splitlines()
        return lines[-1][:300] if lines else "(no output)"

    def wait_for_log(self, text: str, timeout: float = 15.0) -> str:
        """The log once `text` is in it (or as it is after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while text not in self.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.log()

    def worker_pids(self) -> list[int]:
        return worker_pids(self.port)

    def stop(self) -> None:
        stop_group(self.process)  # SIGTERM to the group (BentoML drains), then SIGKILL to what is left
        self._log.close()


# --- a server's processes, through /proc ---------------------------------------------------------


def listening_pids(port: int) -> list[int]:
    """The processes that hold a socket listening on `port` (each worker of the service its own),
    found through /proc; [] where that cannot be read."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    return sorted(int(proc.name) for proc in Path("/proc").glob("[0-9]*") if holds_any(proc, inodes))


def holds_any(proc: Path, targets: set[str]) -> bool:
    """Whether the process /proc/<pid> has a descriptor open on one of `targets` (readlink form).
    A worker under load opens and closes connections all the time: a descriptor that is gone by
    the time it is read is skipped, not taken as the whole process being gone."""
    try:
        descriptors = list((proc / "fd").iterdir())
    except OSError:  # the process has exited, or is not ours to read
        return False
    for fd in descriptors:
        try:
            if os.readlink(fd) in targets:
                return True
        except OSError:
            continue
    return False


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def server_pids(port: int) -> list[int]:
    """The server's processes: those listening on `port`, and their parent where it is the
    serving process (BentoML's arbiter, which holds no listening socket of its own)."""
    pids = set(listening_pids(port))
    for pid in list(pids):
        try:
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"bentoml" in cmdline(parent) or b"-m\0service" in cmdline(parent):
            pids.add(parent)
    return sorted(pids)


def worker_pids(port: int) -> list[int]:
    """The BentoML workers serving `port` (where the models live)."""
    return [pid for pid in listening_pids(port) if WORKER in cmdline(pid)]


def rss_mib(pid: int) -> float | None:
    """The resident memory of process `pid` in MiB (VmRSS), or None once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None  # exited, not yet reaped
