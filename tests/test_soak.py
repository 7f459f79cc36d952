"""The service under load and faults, briefly: the short versions of `python -m bench.soak`.

One `python -m service` on stand-in models in a folder of this module's own (the last test
changes a model file in it). A few seconds of mixed /faces and /digit load at concurrency 64; a
worker killed with SIGKILL under load, its requests lost counted and its replacement awaited; a
model file changed on disk, refused at the next start of the server and of a worker. What they
check is that requests are answered and the server lives on; how fast it answers and how its
memory grows under load are measured by `python -m bench.soak` (docs/benchmarks.md).
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from service_models import serving, write_models

from bench import soak
from bench.processes import Server

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc to manage the server")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    return write_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def server(manifest, tmp_path_factory):
    yield from serving({"VISION_MANIFEST": str(manifest)}, tmp_path_factory.mktemp("serve"))


def test_a_short_soak_of_mixed_load_at_concurrency_64(server):
    server.wait_initialized()
    result = soak.soak(server.url, server.port, seconds=4, concurrency=64, quiet=True, warm_up=0)
    assert result["errors"] == {}, result  # no 5xx, no 4xx, no dropped connection, no timeout
    assert set(result["endpoints"]) == {"/faces", "/digit"} and all(
        e["answered"] > 0 for e in result["endpoints"].values()
    )
    assert result["readyz_after"] == 200


def test_the_report_judges_a_figure_against_its_bound():
    assert soak.within(4.6, soak.RSS_GROWTH_BOUND_MIB, "MiB") == "within the 50 MiB bound"
    assert soak.within(2400.0, soak.SLOW_P99_BOUND_MS, "ms") == "OVER the 2000 ms bound"
    assert soak.within(None, soak.RSS_GROWTH_BOUND_MIB, "MiB") == "not measured"


def test_a_killed_worker_is_replaced_and_later_requests_succeed(server):
    """SIGKILL to a worker under load: the requests it held die (counted; 16 clients' connections
    all land on the other worker once in 65,536 runs), the others keep being answered, circus
    starts a new worker (its check runs every 10 s), and the server answers as before."""
    result = soak.kill(server.url, server.port, seconds=5, concurrency=16, quiet=True)
    print(
        f"kill: {result['lost_requests']} requests lost {result['lost']}, next answer after "
        f"{result['first_answer_after_kill_s']} s, a new worker after {result['new_worker_after_s']} s"
    )
    assert result["lost_requests"] >= 1 and set(result["lost"]) == {"dropped"}, result  # those it held, only
    assert result["new_worker_after_s"] is not None, result
    server.wait_initialized(starts=result["workers_before"] + 1)  # the new one has loaded its models
    assert result["workers_after"] == result["workers_before"]
    assert result["readyz_after"] == 200
    with httpx.Client(base_url=server.url, timeout=30) as http:
        requests = soak.mixed_requests()
        for i in range(20):
            endpoint, kwargs = requests[i % 2]
            assert http.post(endpoint, **kwargs).status_code == 200


def cannot_start_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "vision: cannot start" in line]


def test_a_model_changed_on_disk_is_refused_at_the_next_start(server, manifest, tmp_path):
    """The running server keeps the models it verified and loaded; a new server, and a new worker
    of the running one, refuse the changed file with one line that names it. (Runs last: the
    running server stops.)"""
    server.wait_initialized()  # /readyz answers once one worker is up
    model = manifest.parent / "keypoints.onnx"
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.post("/faces", **soak.mixed_requests()[0][1]).status_code == 200  # still serving

    fresh = Server({"VISION_MANIFEST": str(manifest)}, tmp_path / "fresh.log")
    try:
        fresh.process.wait(timeout=60)
    finally:
        fresh.stop()
    lines = cannot_start_lines(fresh.log())
    assert fresh.process.returncode != 0 and len(lines) == 1, fresh.log()[-2000:]
    assert f"{model}: sha256" in lines[0] and "does not match the manifest" in lines[0]

    before = len(server.log())
    os.kill(server.worker_pids()[0], signal.SIGKILL)
    try:
        server.process.wait(timeout=45)  # the replacement refuses, and stops the server
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server kept running with a changed model file:\n{server.log()[before:][-2000:]}")
    lines = cannot_start_lines(server.log()[before:])
    assert len(lines) == 1 and f"{model}: sha256" in lines[0], server.log()[before:][-2000:]
    print(lines[0])
    time.sleep(0.5)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/readyz", timeout=5)
