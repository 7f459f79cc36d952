"""The service under load, faults and slow clients: the long versions of tests/test_hostile.py and
tests/test_soak.py. Not a test: it prints what it measured and writes it as JSON.

    python -m bench.soak                           # its own server on the shipped models, every phase
    python -m bench.soak --url http://127.0.0.1:3000 --phases soak,slow
    python -m bench.soak --seconds 60 --concurrency 64 --out bench/results/soak.json

Without --url it starts `python -m service` on a free port (the models of --manifest, default the
shipped ones) and stops it at the end. With --url the server must be on this machine for the RSS
figures and the kill phase: its processes are the ones that hold the listening socket.

Phases (--phases, default all four):
- soak: --seconds of closed-loop load from --concurrency clients, /faces (docs/examples/face.jpg
  in a 640x480 frame) and /digit (docs/examples/digit.png) half each: requests per second, p50
  and p99 per endpoint, errors by kind (5xx, other statuses, dropped connections, timeouts), the
  requests shed (503 with Retry-After: more clients than the workers' VISION_MAX_IN_FLIGHT; the
  clients wait the Retry-After before sending again, as the project's clients do), the
  RSS of the server's processes at the start, after a warm-up at the same concurrency (what the
  growth is measured from), every 5 s and after; /readyz at the end.
- kill: --kill-seconds of the same load at --kill-concurrency; a third of the way in one worker
  is killed with SIGKILL. Reported: the requests lost (by kind), the time until the next answer,
  the time until a new worker process held the socket (circus looks every 10 s; it then loads
  the models), the number of workers afterwards, /readyz.
- slow: --slow-clients connections trickle a /digit upload's body in, one byte every
  --slow-pause seconds, while 4 clients post /digit for --slow-seconds: their p50/p99 against the
  same without the slow ones. Then how the server ends a body that stops coming (408 after
  service.limits.BODY_TIMEOUT) and a request head that is never finished (408 after HEAD_TIMEOUT).
- overload: --overload-concurrency clients (default 256) post /faces (the soak's frame) for
  --overload-seconds, far more than the workers take at once (VISION_MAX_IN_FLIGHT each): the
  answers by kind (200, 503, other statuses, connection errors), whether every 503 had a
  Retry-After, the admitted requests' p50/p99, the 503s' latency, /livez and /readyz every second
  meanwhile. Twice: clients that send again at once after a 503 (the worst case), and clients that
  wait the Retry-After first (as clients.api does).
"""

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import platform
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.processes import Server, rss_mib, server_pids, worker_pids
from bench.samples import DIGIT, PHOTO, BenchError, framed, sample
from clients.api import ServiceError, checked_url, unreachable_message

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "soak.json"
PHASES = ("soak", "kill", "slow", "overload")
REQUEST_TIMEOUT = 60.0  # seconds; what a request may take before it counts as a timeout
REPLACE_WAIT = 40.0  # seconds to wait for a killed worker's replacement (circus checks every 10 s)
MAX_RETRY_AFTER = 10.0  # the longest Retry-After the overload phase's clients wait
# What the service must hold to (the tests check only that it answers and lives on; these are
# measured here): the soak's RSS growth after its warm-up, and /digit's p99 beside slow clients.
RSS_GROWTH_BOUND_MIB = 50.0
SLOW_P99_BOUND_MS = 2000.0


# --- the server's processes ------------------------------------------------------------------------


def rss_of(pids: list[int]) -> dict[str, float]:
    """{pid: RSS in MiB} of the processes still alive."""
    return {str(pid): round(mib, 1) for pid in pids if (mib := rss_mib(pid)) is not None}


# --- closed-loop load ------------------------------------------------------------------------------


@dataclass
class Outcome:
    endpoint: str
    started: float  # seconds since the load began
    seconds: float
    kind: str  # "ok", "shed" (503 with Retry-After), "5xx", "4xx", "dropped", "refused", "timeout"
    status: int | None = None
    retry_after: str | None = None  # the answer's Retry-After header


@dataclass
class Load:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        kinds = Counter(o.kind for o in self.outcomes)
        result = {
            "seconds": round(self.seconds, 1),
            "requests": len(self.outcomes),
            "answered_per_second": round(kinds["ok"] / self.seconds, 1) if self.seconds else 0.0,
            "errors": {kind: count for kind, count in sorted(kinds.items()) if kind not in ("ok", "shed")},
            "shed": kinds["shed"],  # a busy worker's 503 with Retry-After: refused, not failed
            "statuses": dict(sorted(Counter(str(o.status) for o in self.outcomes if o.status).items())),
            "endpoints": {},
        }
        for endpoint in sorted({o.endpoint for o in self.outcomes}):
            ok = sorted(o.seconds for o in self.outcomes if o.endpoint == endpoint and o.kind == "ok")
            result["endpoints"][endpoint] = {
                "answered": len(ok),
                "per_second": round(len(ok) / self.seconds, 1) if self.seconds else 0.0,
                "p50_ms": round(percentile(ok, 50) * 1000, 1) if ok else None,
                "p99_ms": round(percentile(ok, 99) * 1000, 1) if ok else None,
            }
        return result


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, round(q / 100 * (len(sorted_values) - 1)))]


def answer_kind(status: int, retry_after: str | None) -> str:
    if status < 400:
        return "ok"
    if status == 503 and retry_after:
        return "shed"
    return "5xx" if status >= 500 else "4xx"


def classify(error: Exception) -> str:
    if isinstance(error, httpx.TimeoutException):
        return "timeout"
    if isinstance(error, httpx.ConnectError):
        return "refused"
    return "dropped"  # reset, closed mid-answer (ReadError, RemoteProtocolError, WriteError)


def run_load(
    url: str,
    requests: list[tuple[str, dict]],
    seconds: float,
    concurrency: int,
    label: str = "load",
    events: list | None = None,
    quiet: bool = False,
    honour_retry_after: bool = True,
) -> Load:
    """`concurrency` clients, each posting the next of `requests` (endpoint, httpx kwargs) as soon as
    its previous answer came (after a 503's Retry-After, as the project's clients wait, unless not
    `honour_retry_after`), for `seconds`.
    `events` are (at_second, callable) run on the way. The clock starts once every client is made
    (a client takes milliseconds of CPU to make: hundreds of them would start over seconds)."""
    load, lock, stop = Load(), threading.Lock(), threading.Event()
    begin = 0.0

    def start_clock() -> None:
        nonlocal begin
        begin = time.perf_counter()

    ready = threading.Barrier(concurrency + 1, action=start_clock)

    def client(index: int) -> None:
        turn = index
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT, limits=limits) as http:
            ready.wait()
            while not stop.is_set():
                endpoint, kwargs = requests[turn % len(requests)]
                turn += 1
                started, retry_after = time.perf_counter(), None
                try:
                    response = http.post(endpoint, **kwargs)
                    status, retry_after = response.status_code, response.headers.get("retry-after")
                    kind = answer_kind(status, retry_after)
                except httpx.HTTPError as e:
                    status, kind = None, classify(e)
                done = time.perf_counter()
                with lock:
                    load.outcomes.append(Outcome(endpoint, started - begin, done - started, kind, status, retry_after))
                if kind in ("refused", "dropped"):
                    time.sleep(0.05)  # a server that is down: do not spin
                elif honour_retry_after and status == 503 and retry_after:
                    stop.wait(min(retry_after_seconds(retry_after), MAX_RETRY_AFTER))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    ready.wait()
    pending = sorted(events or [], key=lambda e: e[0])
    next_report = 5.0
    while (now := time.perf_counter() - begin) < seconds:
        while pending and pending[0][0] <= now:
            pending.pop(0)[1]()
        if now >= next_report and not quiet:
            with lock:
                ok = sum(o.kind == "ok" for o in load.outcomes)
                bad = len(load.outcomes) - ok
            print(
                f"  {label}: {now:4.0f}/{seconds:.0f} s  {ok} answered ({ok / now:.1f}/s), {bad} errors",
                file=sys.stderr,
            )
            next_report += 5.0
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(REQUEST_TIMEOUT + 5)
    load.seconds = time.perf_counter() - begin
    return load


def retry_after_seconds(value: str) -> float:
    try:
        return max(0.0, float(value))
    except ValueError:  # an HTTP date: not what this service sends
        return 1.0


def mixed_requests() -> list[tuple[str, dict]]:
    digit, _ = sample(DIGIT)
    sample(PHOTO)
    photo = framed(PHOTO, 640, 480)
    return [
        ("/faces", {"files": {"image": ("frame.jpg", photo)}}),
        ("/digit", {"files": {"image": ("digit.png", digit)}}),
    ]


def ready(url: str) -> int | str:
    try:
        return httpx.get(f"{url}/readyz", timeout=10).status_code
    except httpx.HTTPError as e:
        return type(e).__name__


# --- the phases ------------------------------------------------------------------------------------


def soak(
    url: str, port: int | None, seconds: float, concurrency: int, quiet: bool = False, warm_up: float | None = None
) -> dict:
    """The mixed load; RSS before any of it, after a warm-up at the same concurrency (the "before"
    that growth is measured from: arenas and buffers a concurrency needs are not a leak), every
    5 s, and after."""
    requests = mixed_requests()
    pids = server_pids(port) if port else []
    start = rss_of(pids)
    warm_up = min(10.0, seconds / 6) if warm_up is None else warm_up
    run_load(url, requests, warm_up, concurrency, "warm-up", quiet=True)
    before = rss_of(pids)
    samples = []
    every = [
        (t, lambda t=t: samples.append((t, round(sum(rss_of(pids).values()), 1)))) for t in range(5, int(seconds), 5)
    ]
    load = run_load(url, requests, seconds, concurrency, "soak", every if pids else [], quiet=quiet)
    time.sleep(1.0)
    after = rss_of(pids)
    total_before, total_after = sum(before.values()), sum(after.values())
    return {
        "concurrency": concurrency,
        "warm_up_s": warm_up,
        **load.summary(),
        "rss_mib_at_start": start or None,
        "rss_mib_before": before or None,
        "rss_mib_after": after or None,
        "rss_growth_mib": round(total_after - total_before, 1) if before and after else None,
        "rss_total_mib_every_5_s": samples or None,
        "readyz_after": ready(url),
    }


def kill(url: str, port: int, seconds: float, concurrency: int, quiet: bool = False) -> dict:
    """SIGKILL one worker a third of the way into a load; what was lost and how it came back."""
    workers = worker_pids(port)
    if not workers:
        raise BenchError(f"no BentoML worker holds port {port} on this machine: the kill phase needs a local server")
    victim, killed_at = workers[0], seconds / 3
    timeline = {}

    def do_kill() -> None:
        timeline["killed_at"] = time.perf_counter()
        os.kill(victim, signal.SIGKILL)

    def watch() -> None:  # the new worker: a pid that was not there before, holding the socket
        while "replaced" not in timeline and time.perf_counter() - begin < seconds + REPLACE_WAIT:
            if "killed_at" in timeline:
                new = sorted(set(worker_pids(port)) - set(workers))
                if new:
                    timeline["replaced"] = time.perf_counter()
                    timeline["new_worker"] = new[0]
            time.sleep(0.05)

    begin = time.perf_counter()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    load = run_load(url, mixed_requests(), seconds, concurrency, "kill", [(killed_at, do_kill)], quiet=quiet)
    watcher.join(REPLACE_WAIT)  # circus looks at its workers every 10 s: the new one may come after the load
    since_kill = timeline["killed_at"] - begin
    lost = [o for o in load.outcomes if o.kind not in ("ok", "shed")]
    later = [o for o in load.outcomes if o.started > since_kill and o.kind == "ok"]
    first_answer = min((o.started + o.seconds for o in later), default=None)
    new_worker = timeline.get("new_worker")
    return {
        "concurrency": concurrency,
        "workers_before": len(workers),
        "killed_at_s": round(since_kill, 2),
        **load.summary(),
        "lost": dict(Counter(o.kind for o in lost)),
        "lost_requests": len(lost),
        "first_answer_after_kill_s": round(first_answer - since_kill, 3) if first_answer is not None else None,
        "new_worker_after_s": round(timeline["replaced"] - timeline["killed_at"], 2) if new_worker else None,
        "answered_after_new_worker": sum(
            o.kind == "ok" for o in later if new_worker and o.started > timeline["replaced"] - begin
        ),
        "workers_after": len(worker_pids(port)),
        "readyz_after": ready(url),
    }


def trickle(port: int, body: bytes, pause: float, stop: threading.Event, result: dict) -> None:
    """One slow client: a /digit upload's head, then its body a byte at a time."""
    started = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT + 30) as s:
            s.sendall(
                b"POST /digit HTTP/1.1\r\nHost: soak\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)
            )
            for i in range(len(body)):
                if stop.is_set():
                    break
                s.sendall(body[i : i + 1])
                time.sleep(pause)
            else:
                reply = s.recv(4096)
                result["status"] = reply.split(b" ", 2)[1].decode() if reply else "closed"
                return
            s.settimeout(max(1.0, REQUEST_TIMEOUT))
            reply = s.recv(4096)  # the server's answer to a body that stopped coming
            result["status"] = reply.split(b" ", 2)[1].decode() if reply else "closed"
    except OSError as e:
        result["status"] = type(e).__name__
    finally:
        result["seconds"] = round(time.perf_counter() - started, 1)


def slow_clients(port: int, body: bytes, pause: float, count: int, stop, answers) -> None:
    """`count` trickling clients in threads; puts (their results, how many were still sending
    when `stop` was set) on `answers` once they are done."""
    halt, results = threading.Event(), [{} for _ in range(count)]
    threads = [
        threading.Thread(target=trickle, args=(port, body, pause, halt, results[i]), daemon=True) for i in range(count)
    ]
    for thread in threads:
        thread.start()
    stop.wait()
    still_sending = sum(thread.is_alive() for thread in threads)
    halt.set()
    for thread in threads:
        thread.join(REQUEST_TIMEOUT + 35)
    answers.put((results, still_sending))


def stalled(port: int, head: bytes, wait: float) -> dict:
    """Send `head` and nothing more; what the server does, and after how long (at most `wait` s)."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(head)
        try:
            reply = s.recv(4096)
            status = reply.split(b" ", 2)[1].decode() if reply else "closed"
            error = json.loads(reply.split(b"\r\n\r\n", 1)[1] or b"{}").get("error") if reply else None
        except TimeoutError:
            status, error = f"still open after {wait:.0f} s", None
        except (ValueError, IndexError):
            error = None
    return {"status": status, "after_s": round(time.perf_counter() - started, 1), "error": error}


def slow(url: str, port: int, count: int, seconds: float, pause: float, quiet: bool = False) -> dict:
    digit, _ = sample(DIGIT)
    body = b'--b\r\nContent-Disposition: form-data; name="image"; filename="d.png"\r\n\r\n' + digit + b"\r\n--b--\r\n"
    requests = [("/digit", {"files": {"image": ("digit.png", digit)}})]
    from service.limits import BODY_TIMEOUT, HEAD_TIMEOUT

    head = b"POST /digit HTTP/1.1\r\nHost: soak\r\nContent-Type: multipart/form-data; boundary=b\r\n"
    stalls = {}
    stallers = [
        threading.Thread(target=lambda k=k, h=h: stalls.update({k: stalled(port, h, HEAD_TIMEOUT + 60)}), daemon=True)
        for k, h in (("unfinished_head", head), ("silent_connection", b""))
    ]
    for thread in stallers:
        thread.start()
    alone = run_load(url, requests, seconds, 4, "alone", quiet=True).summary()
    # The slow clients run in a process of their own, so that their sending does not hold this
    # process's GIL away from the clients being measured.
    context = multiprocessing.get_context("fork")
    stop, answers = context.Event(), context.Queue()
    trickling = context.Process(target=slow_clients, args=(port, body, pause, count, stop, answers), daemon=True)
    trickling.start()
    time.sleep(1.0)
    beside = run_load(url, requests, seconds, 4, "beside slow clients", quiet=quiet).summary()
    stop.set()  # the slow clients stop sending: the server ends them
    results, open_slow = answers.get(timeout=REQUEST_TIMEOUT + 40)
    trickling.join(10)
    for thread in stallers:
        thread.join(REQUEST_TIMEOUT + 35)
    return {
        "slow_clients": count,
        "byte_every_s": pause,
        "body_bytes": len(body),
        "digit_alone": alone["endpoints"]["/digit"] | {"errors": alone["errors"]},
        "digit_beside_slow_clients": beside["endpoints"]["/digit"] | {"errors": beside["errors"]},
        "slow_clients_still_sending_at_the_end": open_slow,
        "slow_clients_when_they_stopped_sending": dict(Counter(str(r.get("status")) for r in results)),
        "slow_client_seconds_max": max((r.get("seconds", 0) for r in results), default=None),
        "body_timeout_s": BODY_TIMEOUT,
        "head_timeout_s": HEAD_TIMEOUT,
        "unfinished_head": stalls.get("unfinished_head"),
        "silent_connection": stalls.get("silent_connection"),
        "readyz_after": ready(url),
    }


def overload(url: str, seconds: float, concurrency: int, honour_retry_after: bool = False, quiet: bool = False) -> dict:
    """`concurrency` clients on /faces, far more than the workers take: what was answered (200),
    shed (503), anything else, the latencies of each, and the probes meanwhile."""
    photo = framed(PHOTO, 640, 480)
    load, probes = asyncio.run(overload_load(url, photo, seconds, concurrency, honour_retry_after, quiet))
    admitted = sorted(o.seconds for o in load.outcomes if o.status == 200)
    shed = sorted(o.seconds for o in load.outcomes if o.status == 503)
    connection = Counter(o.kind for o in load.outcomes if o.status is None)
    other = Counter(str(o.status) for o in load.outcomes if o.status not in (None, 200, 503))
    return {
        "concurrency": concurrency,
        "clients_wait_retry_after": honour_retry_after,
        "seconds": round(load.seconds, 1),
        "requests": len(load.outcomes),
        "answered": len(admitted),
        "answered_per_second": round(len(admitted) / load.seconds, 1) if load.seconds else 0.0,
        "shed": len(shed),
        "shed_without_retry_after": sum(o.status == 503 and not o.retry_after for o in load.outcomes),
        "retry_after": sorted({o.retry_after for o in load.outcomes if o.status == 503 and o.retry_after}),
        "other_statuses": dict(other),
        "connection_errors": dict(connection),
        "admitted_p50_ms": ms(percentile(admitted, 50)) if admitted else None,
        "admitted_p99_ms": ms(percentile(admitted, 99)) if admitted else None,
        "admitted_max_ms": ms(admitted[-1]) if admitted else None,
        "shed_p50_ms": ms(percentile(shed, 50)) if shed else None,
        "shed_p99_ms": ms(percentile(shed, 99)) if shed else None,
        "probes": dict(Counter(f"{path} {status}" for path, status, _ in probes)),
        "probe_max_ms": ms(max(seconds for *_, seconds in probes)) if probes else None,
        "readyz_after": ready(url),
    }


async def overload_load(
    url: str, photo: bytes, seconds: float, concurrency: int, honour_retry_after: bool, quiet: bool
) -> tuple[Load, list]:
    """The overload phase's clients, as asyncio tasks of one event loop, each with a keep-alive
    connection of its own over which it sends one ready-made request, byte for byte, as soon as
    its answer came (after a 503's Retry-After, with `honour_retry_after`); /livez and /readyz are
    asked every second meanwhile. Hundreds of threads in one process (as `run_load` has) wait for
    each other's turn at the GIL, and a full HTTP client takes about a millisecond of CPU per
    request; on 2 cores shared with the server, either would be counted as the server's time."""
    load, probes = Load(), []
    target = httpx.URL(url)
    request = multipart_post(target.host, "/faces", "image", "frame.jpg", photo)
    begin = time.perf_counter()
    end = begin + seconds

    async def client() -> None:
        connection = None
        while (now := time.perf_counter()) < end:
            status, retry_after = None, None
            try:
                if connection is None:
                    connection = await asyncio.open_connection(target.host, target.port or 80)
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    status, headers = await exchange(*connection, request)
                retry_after = headers.get("retry-after")
                kind = answer_kind(status, retry_after)
                if headers.get("connection", "").lower() == "close":
                    connection = close(connection)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, TimeoutError) as e:
                kind = "timeout" if isinstance(e, TimeoutError) else "dropped" if connection else "refused"
                connection = close(connection)
            done = time.perf_counter()
            load.outcomes.append(Outcome("/faces", now - begin, done - now, kind, status, retry_after))
            if kind in ("refused", "dropped"):
                await asyncio.sleep(0.05)  # a server that is down: do not spin
            elif honour_retry_after and status == 503 and retry_after:
                await asyncio.sleep(min(retry_after_seconds(retry_after), MAX_RETRY_AFTER, max(0.0, end - done)))
        close(connection)

    async def prober() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT) as http:
            for second in itertools.count(1):
                await asyncio.sleep(1.0)
                if time.perf_counter() >= end:
                    return
                for path in ("/livez", "/readyz"):
                    started = time.perf_counter()
                    try:
                        status = (await http.get(path)).status_code
                    except httpx.HTTPError as e:
                        status = type(e).__name__
                    probes.append((path, status, time.perf_counter() - started))
                if not quiet and second % 5 == 0:
                    ok = sum(o.kind == "ok" for o in load.outcomes)
                    now = time.perf_counter() - begin
                    print(f"  overload: {now:4.0f}/{seconds:.0f} s  {ok} answered ({ok / now:.1f}/s)", file=sys.stderr)

    await asyncio.gather(prober(), *(client() for _ in range(concurrency)))
    load.seconds = time.perf_counter() - begin
    return load, probes


def multipart_post(host: str, path: str, field: str, filename: str, data: bytes) -> bytes:
    """A whole HTTP/1.1 request: a multipart form with one file."""
    boundary = b"vision-bench-soak"
    body = b'--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\n\r\n%s\r\n--%s--\r\n' % (
        boundary,
        field.encode(),
        filename.encode(),
        data,
        boundary,
    )
    head = (
        b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: multipart/form-data; boundary=%s\r\n"
        b"Content-Length: %d\r\n\r\n" % (path.encode(), host.encode(), boundary, len(body))
    )
    return head + body


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, dict]:
    """Send `request`; the answer's status and headers (lower-case names), its body read and dropped."""
    writer.write(request)
    await writer.drain()
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    pairs = (line.split(":", 1) for line in lines[1:] if ":" in line)
    headers = {name.strip().lower(): value.strip() for name, value in pairs}
    await reader.readexactly(int(headers.get("content-length", 0)))
    return status, headers


def close(connection) -> None:
    if connection is not None:
        connection[1].close()


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


# --- the command -----------------------------------------------------------------------------------


def report(results: dict) -> None:
    if "soak" in results:
        s = results["soak"]
        print(
            f"soak: {s['seconds']:.0f} s at concurrency {s['concurrency']}: {s['requests']} requests, "
            f"{s['answered_per_second']} answered/s, errors {s['errors'] or 'none'}, {s['shed']} shed (503); RSS "
            f"{fmt_rss(s['rss_mib_at_start'])} at start, {fmt_rss(s['rss_mib_before'])} after "
            f"{s['warm_up_s']:.0f} s of warm-up -> {fmt_rss(s['rss_mib_after'])} MiB "
            f"(growth {s['rss_growth_mib']} MiB, {within(s['rss_growth_mib'], RSS_GROWTH_BOUND_MIB, 'MiB')}); "
            f"/readyz {s['readyz_after']}"
        )
        for endpoint, e in s["endpoints"].items():
            print(f"  {endpoint:<8} {e['per_second']:7.1f} req/s  p50 {e['p50_ms']} ms  p99 {e['p99_ms']} ms")
    if "kill" in results:
        k = results["kill"]
        print(
            f"kill: SIGKILL to 1 of {k['workers_before']} workers at {k['killed_at_s']} s under concurrency "
            f"{k['concurrency']}: {k['lost_requests']} requests lost {k['lost'] or ''}; next answer after "
            f"{k['first_answer_after_kill_s']} s; a new worker after {k['new_worker_after_s']} s "
            f"({k['answered_after_new_worker']} answers after it); workers {k['workers_after']}; "
            f"/readyz {k['readyz_after']}"
        )
    if "slow" in results:
        w = results["slow"]
        a, b = w["digit_alone"], w["digit_beside_slow_clients"]
        print(
            f"slow: /digit at concurrency 4 alone p50 {a['p50_ms']} / p99 {a['p99_ms']} ms ({a['per_second']}/s); "
            f"beside {w['slow_clients']} slow clients p50 {b['p50_ms']} / p99 {b['p99_ms']} ms "
            f"({within(b['p99_ms'], SLOW_P99_BOUND_MS, 'ms')}; {b['per_second']}/s), errors {b['errors'] or 'none'}"
        )
        print(
            f"  slow bodies that stopped: {w['slow_clients_when_they_stopped_sending']} (at most "
            f"{w['slow_client_seconds_max']} s); unfinished head: {w['unfinished_head']['status']} after "
            f"{w['unfinished_head']['after_s']} s; silent connection: {w['silent_connection']['status']} after "
            f"{w['silent_connection']['after_s']} s; /readyz {w['readyz_after']}"
        )

    for o in results.get("overload", []):
        print(
            f"overload: {o['concurrency']} clients on /faces for {o['seconds']:.0f} s, "
            f"{'waiting Retry-After' if o['clients_wait_retry_after'] else 'sending again at once'} after a 503: "
            f"{o['answered']} answered ({o['answered_per_second']}/s), {o['shed']} shed (503; "
            f"{o['shed_without_retry_after']} without Retry-After), other statuses {o['other_statuses'] or 'none'}, "
            f"connection errors {o['connection_errors'] or 'none'}; admitted p50 {o['admitted_p50_ms']} / p99 "
            f"{o['admitted_p99_ms']} ms, 503 p50 {o['shed_p50_ms']} / p99 {o['shed_p99_ms']} ms; probes "
            f"{o['probes']} (at most {o['probe_max_ms']} ms); /readyz {o['readyz_after']}"
        )


def within(value: float | None, bound: float, unit: str) -> str:
    """A figure against its bound, in words."""
    if value is None:
        return "not measured"
    return f"{'within' if value <= bound else 'OVER'} the {bound:g} {unit} bound"


def with_earlier_phases(results: dict, phases: list[str], out: Path) -> dict:
    """`results`, plus the phases not run this time as `out` holds them from an earlier run, and
    `measured`: when each phase was measured."""
    try:
        earlier = json.loads(out.read_text())
    except (OSError, ValueError):
        earlier = {}
    measured = earlier.get("measured") or {p: earlier.get("when") for p in PHASES if p in earlier}
    for phase in PHASES:
        if phase not in phases and phase in earlier:
            results[phase] = earlier[phase]
    measured.update(dict.fromkeys(phases, results["when"]))
    return {**results, "measured": {phase: measured[phase] for phase in PHASES if phase in results}}


def fmt_rss(rss: dict | None) -> str:
    return "+".join(f"{v:.0f}" for v in rss.values()) if rss else "?"


def own_server(manifest: Path) -> Server:
    """`python -m service` on `manifest`, ready when returned with every worker's models loaded,
    its log in a temporary file."""
    log_path = Path(tempfile.mkstemp(prefix="vision-soak-", suffix=".log")[1])
    server = Server({"VISION_MANIFEST": str(manifest), "BENTOML_DO_NOT_TRACK": "true"}, log_path, timeout=180.0)
    try:
        server.wait_ready()
        server.wait_initialized()  # /readyz answers once one worker is up
    except BaseException:
        server.stop()
        log_path.unlink(missing_ok=True)
        raise
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--url", help="a running service on this machine, e.g. http://127.0.0.1:3000 (default: start one of its own)"
    )
    parser.add_argument(
        "--manifest", type=Path, default=ROOT / "models" / "manifest.json", help="its own server's models"
    )
    parser.add_argument("--phases", default=",".join(PHASES), help="comma-separated: soak, kill, slow, overload")
    parser.add_argument("--seconds", type=float, default=60.0, help="soak length (default 60)")
    parser.add_argument("--concurrency", type=int, default=64, help="soak clients (default 64)")
    parser.add_argument(
        "--warm-up",
        type=float,
        help="load before the soak, at its concurrency, that RSS growth is measured after (default: "
        "a sixth of --seconds, at most 10)",
    )
    parser.add_argument("--kill-seconds", type=float, default=20.0, help="kill phase length (default 20)")
    parser.add_argument("--kill-concurrency", type=int, default=16, help="kill phase clients (default 16)")
    parser.add_argument("--slow-clients", type=int, default=64, help="connections trickling a body in (default 64)")
    parser.add_argument("--slow-seconds", type=float, default=15.0, help="load beside them (default 15)")
    parser.add_argument("--slow-pause", type=float, default=0.1, help="seconds between their bytes (default 0.1)")
    parser.add_argument("--overload-seconds", type=float, default=15.0, help="overload length, each (default 15)")
    parser.add_argument(
        "--overload-concurrency", type=int, default=256, help="clients on /faces in the overload phase (default 256)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        parser.error(f"unknown phase {', '.join(unknown)}; choose from {', '.join(PHASES)}")
    if args.warm_up is not None and args.warm_up < 0:
        parser.error("--warm-up must be 0 or more seconds")
    server, url = None, None
    try:
        if args.url:
            url = checked_url(args.url)
            status = ready(url)
            if status != 200:
                raise BenchError(
                    f"{url} answers but is not ready (/readyz: {status})"
                    if isinstance(status, int)
                    else unreachable_message(url)
                )
            port = httpx.URL(url).port or 80
        else:
            print(f"starting python -m service on {args.manifest} ...", file=sys.stderr)
            server = own_server(args.manifest)
            url, port = server.url, server.port
        results = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "url": url,
            "own_server": server is not None,
            "manifest": str(args.manifest) if server else None,
            "workers": len(worker_pids(port)),
        }
        if "soak" in phases:
            results["soak"] = soak(url, port, args.seconds, args.concurrency, warm_up=args.warm_up)
        if "kill" in phases:
            results["kill"] = kill(url, port, args.kill_seconds, args.kill_concurrency)
        if "slow" in phases:
            results["slow"] = slow(url, port, args.slow_clients, args.slow_seconds, args.slow_pause)
        if "overload" in phases:
            results["overload"] = [
                overload(url, args.overload_seconds, args.overload_concurrency, honour_retry_after=honour)
                for honour in (False, True)
            ]
        report(results)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(with_earlier_phases(results, phases, args.out), indent=2) + "\n")
        print(f"-> {args.out}")
    except BenchError as e:
        sys.exit(f"error: {e}")
    except ServiceError as e:
        sys.exit(f"error: {e}")
    except (httpx.ConnectError, httpx.ConnectTimeout):
        sys.exit(f"error: {unreachable_message(url)}")
    except KeyboardInterrupt:
        sys.exit("interrupted")
    finally:
        if server is not None:
            server.stop()
            server.log_path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
