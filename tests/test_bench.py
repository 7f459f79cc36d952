"""`python -m bench` without a service: one line, non-zero exit. (Its run against a real service
is in test_clients.py, which has one.)"""

import json
import os
import subprocess
import sys
from pathlib import Path

from service_models import free_port

ROOT = Path(__file__).resolve().parent.parent


def bench(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "VISION_URL"}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bench_says_nothing_answers_in_one_line():
    url = f"http://127.0.0.1:{free_port()}"
    for done in (bench("--url", url), bench(env={"VISION_URL": url})):
        assert done.returncode != 0 and done.stdout == ""
        assert done.stderr.strip() == (
            f"error: nothing answers at {url}: start the service with `make serve`, or pass --url (or set VISION_URL)"
        )


def test_bench_refuses_a_url_without_scheme():
    done = bench("--url", "localhost:3000")
    assert done.returncode != 0 and done.stderr.strip() == (
        "error: bad service URL 'localhost:3000': expected e.g. http://127.0.0.1:3000"
    )


def test_bench_help_names_the_command():
    done = bench("--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m bench ")


def test_webcam_bench_measures_local_mode_and_smoothing(tmp_path):
    """A short run of `python -m bench.webcam` without a service: the numbers it reports exist
    and are sane (the figures themselves belong in the README, not in a test)."""
    out = tmp_path / "webcam.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.webcam", "--no-service", "--frames", "60", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())
    assert (
        list(results["fps"]) == ["--local, pipelined (--in-flight 3)"]
        and results["fps"]["--local, pipelined (--in-flight 3)"]["frames"] == 60
    )
    still = results["smoothing"]["still_jitter_px"]
    assert still["smoothed"] < still["raw"]  # the filter quiets a still face
    assert all(lag > 0 for lag in results["smoothing"]["lag_frames"].values())  # and trails a moving one
    assert "still-face jitter" in done.stdout


def test_webcam_bench_says_nothing_answers_in_one_line():
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "bench.webcam", "--url", url], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0 and done.stderr.strip().startswith(f"error: nothing answers at {url}")
