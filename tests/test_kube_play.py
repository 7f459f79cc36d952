"""The Kubernetes Deployment, run for real: `make kube-test` (= `pytest -m buildah tests/test_kube_play.py`).

Opt-in (the `buildah` marker, deselected by default). It builds the CPU image as `make image` does
(deploy/image/build.sh), renders deploy/k8s/base as `kubectl kustomize` would (tests/deployment.py's
kustomize, which tests/test_deploy.py compares with kubectl's), and plays its Deployment with `podman kube play`:
the image's user, the pod and container securityContext (non-root, read-only root filesystem, no
privilege escalation, no capability, seccomp), the emptyDir on /tmp, BENTOML_HOME and the API keys
from the Secret, all as written. Then /readyz, a photo to /faces with the key (and without it), and
from inside the container: the user, the read-only root, the capabilities, no_new_privs and seccomp
as the kernel reports them. `podman kube down` at the end; the image stays.

What is changed for podman, and why (nothing else is):
- `replicas: 1`: one host; a second replica would ask for the same host port.
- a free `hostPort` on the container port: podman publishes the container's port on the host.
- the Secret volume says `optional: false`: podman 4.3 (Debian 12's) crashes when it is unset
  (containers/podman#16636). The Secret itself becomes a podman secret holding its YAML, which is
  where podman looks for it (4.3 reads no `kind: Secret` from the played file).
- `CONTAINERS_CONF`: runc and explicit ulimits, which this sandbox needs (no crun; no
  CAP_SYS_RESOURCE, see tests/test_image.py); harmless elsewhere.

Needs root (or rootless podman), buildah and podman, and for the build network access to PyPI and a
Debian mirror.
"""

import base64
import os
import re
import shutil
import subprocess
import time

import httpx
import pytest
import yaml
from deployment import BASE, IMAGE, build_image, by_kind, print_report, render

from bench.processes import ServerFailed, free_port, wait_ready
from bench.samples import EXAMPLES

pytestmark = [
    pytest.mark.buildah,
    pytest.mark.skipif(
        not (shutil.which("buildah") and shutil.which("podman")), reason="needs buildah and podman (apt-get install)"
    ),
]

KEY = "kube-play-test-key-0123456789abcdef"  # only ever in this test's Secret
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
{engine}"""
REPORT: dict[str, object] = {}


@pytest.fixture(scope="module", autouse=True)
def report(request):
    yield REPORT
    print_report(request, "kube play", REPORT)


@pytest.fixture(scope="module")
def podman_env(tmp_path_factory):
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF.format(engine='[engine]\nruntime = "runc"\n' if shutil.which("runc") else ""))
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman(env: dict, *args: str, timeout: float = 120, check: bool = True) -> str:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check:
        assert done.returncode == 0, f"podman {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def played_deployment(host_port: int) -> dict:
    """deploy/k8s/base's Deployment, with only the changes the module's docstring lists."""
    deployment = by_kind(render(BASE))["Deployment"]
    deployment["spec"]["replicas"] = 1
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    container["image"] = IMAGE
    (port,) = container["ports"]
    port["hostPort"] = host_port
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            volume["secret"]["optional"] = False
    return deployment


def secret_for(deployment: dict) -> tuple[str, dict]:
    """(its name, the Secret the Deployment mounts), holding KEY under the key it mounts."""
    pod = deployment["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    (item,) = volume["secret"]["items"]
    name = volume["secret"]["secretName"]
    data = {item["key"]: base64.b64encode(f"{KEY}\n".encode()).decode()}
    return name, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque", "data": data}


@pytest.fixture(scope="module")
def image():
    build_image(REPORT)
    return IMAGE


@pytest.fixture(scope="module")
def pod(image, podman_env, tmp_path_factory):
    """(url, container id, the key the pod was given) of the played Deployment, until the module ends."""
    env, folder = podman_env, tmp_path_factory.mktemp("kube")
    host_port = free_port()
    deployment = played_deployment(host_port)
    played = folder / "deployment.yaml"
    played.write_text(yaml.safe_dump(deployment, sort_keys=False))
    secret_name, secret = secret_for(deployment)
    if podman(env, "secret", "ls", "--format", "{{.Name}}").split().count(secret_name):
        pytest.skip(f"a podman secret {secret_name!r} exists already: this test would replace it")
    volumes_before = set(podman(env, "volume", "ls", "--quiet").split())
    (folder / "secret.yaml").write_text(yaml.safe_dump(secret))
    podman(env, "secret", "create", secret_name, str(folder / "secret.yaml"))
    start = time.monotonic()
    try:
        out = podman(env, "kube", "play", str(played), timeout=300)
        (pod_id,) = re.findall(r"^Pod:\n(\w+)", out, re.M)
        rows = podman(env, "ps", "--all", "--filter", f"pod={pod_id}", "--format", "{{.ID}} {{.IsInfra}}").split("\n")
        (cid,) = [row.split()[0] for row in rows if row.endswith(" false")]
        url = f"http://127.0.0.1:{host_port}"
        running = lambda: podman(env, "inspect", "--format", "{{.State.Running}}", cid).strip() == "true"
        try:
            wait_ready(url, 300, alive=running)
        except ServerFailed:
            pytest.fail(f"the pod did not become ready:\n{podman(env, 'logs', cid, check=False)[-4000:]}")
        REPORT["kube play to /readyz"] = f"{time.monotonic() - start:.1f} s"
        # The key as the pod got it: Kubernetes decodes `data`; podman 4.3 mounts the base64 text as it is.
        given = podman(env, "exec", cid, "cat", "/etc/vision/api-keys/keys").strip()
        assert given in (KEY, secret["data"][next(iter(secret["data"]))]), "the Secret's key was not mounted"
        REPORT["key as mounted"] = "decoded, as Kubernetes does" if given == KEY else "base64 as is (podman 4.3)"
        yield url, cid, given
    finally:
        stop = time.monotonic()
        podman(env, "kube", "down", str(played), timeout=120, check=False)
        REPORT["kube down"] = f"{time.monotonic() - stop:.1f} s"
        podman(env, "secret", "rm", secret_name, check=False)
        for volume in set(podman(env, "volume", "ls", "--quiet").split()) - volumes_before:
            podman(env, "volume", "rm", "--force", volume, check=False)  # the emptyDir and the Secret's copy
    assert pod_id not in podman(env, "pod", "ps", "--quiet", "--no-trunc")


def test_the_played_deployment_is_ready_and_answers_a_keyed_request(pod, podman_env):
    url, cid, key = pod
    assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
    photo = {"image": ("face.jpg", (EXAMPLES / "face.jpg").read_bytes())}
    answer = httpx.post(f"{url}/faces", files=photo, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    assert answer.status_code == 200, answer.text[:300]
    faces = answer.json()["faces"]
    assert len(faces) == 1 and len(faces[0]["keypoints"]) == 15
    assert answer.headers["x-content-type-options"] == "nosniff"
    refused = httpx.post(f"{url}/faces", files=photo, timeout=60)
    assert refused.status_code == 401  # the Secret's key is really in force
    group = httpx.post(
        f"{url}/faces",
        files={"image": ("group.jpg", (EXAMPLES / "group.jpg").read_bytes())},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert len(group.json()["faces"]) == 5
    # The only writable place holds BentoML's own files, never an upload (they stay in memory).
    files = podman(podman_env, "exec", cid, "find", "/tmp", "-type", "f").split()
    assert files and all(f.startswith("/tmp/bentoml/") for f in files), files


def test_the_container_runs_as_the_pod_spec_says(pod, podman_env):
    """What the kernel reports from inside, not what the YAML asks for."""
    _, cid, _ = pod
    run = lambda *command, check=True: podman(podman_env, "exec", cid, *command, check=check)
    assert run("id", "-u").strip() == "1034"  # runAsUser: the image's `bentoml`
    status = dict(line.split(":\t", 1) for line in run("cat", "/proc/1/status").splitlines() if ":\t" in line)
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0  # capabilities: drop ALL
    assert status["NoNewPrivs"].strip() == "1"  # allowPrivilegeEscalation: false
    assert status["Seccomp"].strip() == "2"  # a seccomp filter is in force
    written = subprocess.run(
        ["podman", "exec", cid, "touch", "/home/bentoml/bento/written"],
        capture_output=True,
        text=True,
        env=podman_env,
        timeout=30,
    )
    assert written.returncode != 0 and "Read-only file system" in written.stderr  # readOnlyRootFilesystem
    run("touch", "/tmp/written")  # the emptyDir
    assert run("sh", "-c", "echo $BENTOML_HOME").strip() == "/tmp/bentoml"
    assert "prometheus_multiproc_dir" in run("ls", "/tmp/bentoml")
