"""Serve the Vision service: `bentoml serve service.service:Vision`, one server's worth of state.

    python -m service                       # http://127.0.0.1:3000 (what `make serve` runs)
    python -m service --port 8080
    python -m service --host 0.0.0.0 --port 3000 --workers 2   # other options go to `bentoml serve`

Two things plain `bentoml serve` does not do:
- it gives this server a Prometheus folder of its own (BentoML shares one per BENTOML_HOME and
  empties it whenever any server starts, wiping the /metrics of every other running server);
- it logs one line when /readyz first answers 200: the URL, the execution providers in use, and
  whether API keys are required (VISION_API_KEYS) or the service is open to whoever reaches it.
"""

import argparse
import json
import logging
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from service.bentoml_compat import own_metrics_folder

SERVICE = "service.service:Vision"
logger = logging.getLogger("bentoml.vision")


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m service",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Any other option is passed to `bentoml serve` (see `bentoml serve --help`).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3000, help="port (default 3000)")
    return parser.parse_known_args(argv)


def api_keys() -> tuple[str, ...]:
    """The service's API keys as the server will read them; none where the settings are bad (the
    server then stops with the one line that says why)."""
    from service.settings import Settings, SettingsError

    try:
        return Settings.from_environment().api_keys
    except SettingsError:
        return ()


def announce_when_ready(url: str, stop: threading.Event, keys: tuple[str, ...] = (), timeout: float = 600.0) -> None:
    """Poll /readyz; on the first 200 log the URL, what /info says the models run on (asked with
    one of the keys), and whether a key is needed. No key is ever logged."""
    deadline = time.monotonic() + timeout
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    break
        except (urllib.error.URLError, OSError):
            pass
        stop.wait(0.2)
    else:
        return
    try:
        headers = {"Authorization": f"Bearer {keys[0]}"} if keys else {}
        with urllib.request.urlopen(urllib.request.Request(f"{url}/info", headers=headers), timeout=5) as response:
            info = json.load(response)
        providers = ", ".join(info["providers"])
        variants = [name for name, model in info["models"].items() if model.get("variant_of")]
        detail = f"models on {providers}" + (f", int8: {', '.join(variants)}" if variants else "")
    except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
        detail = f"(/info unreadable: {e})"
    access = "API keys required" if keys else "open: no API key required (set VISION_API_KEYS)"
    logger.info("vision: ready at %s: %s; %s; try %s/docs.json", url, detail, access, url)


def port_in_use(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def main(argv: list[str] | None = None) -> None:
    args, rest = parse(sys.argv[1:] if argv is None else argv)
    if port_in_use(args.host, args.port):
        sys.exit(
            f"vision: cannot start: {args.host}:{args.port} is already in use (another server?); pick --port or PORT="
        )
    from bentoml_cli.cli import cli

    metrics = tempfile.mkdtemp(prefix="vision-metrics-")
    own_metrics_folder(metrics)
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    stop = threading.Event()
    announce = (f"http://{host}:{args.port}", stop, api_keys())
    threading.Thread(target=announce_when_ready, args=announce, daemon=True).start()
    try:
        cli.main(
            ["serve", SERVICE, "--host", args.host, "--port", str(args.port), *rest], prog_name="python -m service"
        )
    finally:
        stop.set()
        shutil.rmtree(metrics, ignore_errors=True)


if __name__ == "__main__":
    main()
