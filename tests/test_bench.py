"""`python -m bench` without a service: one line, non-zero exit. (Its run against a real service
is in test_clients.py, which has one.)"""

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
