"""What the deployment tests share (test_deploy, test_image, test_kube_play): a small kustomize
that renders deploy/k8s as `kubectl kustomize` does, and building and running the container image
with podman (waiting for its /readyz: bench/processes.py's `wait_ready`)."""

import copy
import os
import shutil
import subprocess
import time
from pathlib import Path

import yaml
from service_models import ROOT

K8S = ROOT / "deploy" / "k8s"
BASE, GPU = K8S / "base", K8S / "gpu"


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


# --- a small kustomize: resources, images, strategic-merge patches ---------------------------------

MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "ports": "containerPort"}
MERGE_KEYS |= {"volumes": "name", "volumeMounts": "mountPath"}
SUPPORTED = {"apiVersion", "kind", "resources", "images", "patches"}


def merge(base, patch, key: str = ""):
    """Strategic merge as kustomize does it for these fields: maps merge, lists with a merge key merge
    by that key, other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = merge(base[k], v, k) if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and key in MERGE_KEYS:
        name = MERGE_KEYS[key]
        out = [copy.deepcopy(item) for item in base]
        for item in patch:
            at = [i for i, old in enumerate(out) if old.get(name) == item.get(name)]
            if at:
                out[at[0]] = merge(out[at[0]], item)
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def set_images(resource: dict, images: list[dict]) -> None:
    pod = resource.get("spec", {}).get("template", {}).get("spec", {})
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        name, _, tag = container["image"].partition(":")
        for rule in images:
            if rule["name"] == name:
                name, tag = rule.get("newName", name), rule.get("newTag", tag)
        container["image"] = f"{name}:{tag}" if tag else name


def render(folder: Path) -> list[dict]:
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert set(kustomization) <= SUPPORTED, f"the test's kustomize lacks {set(kustomization) - SUPPORTED}"
    resources = []
    for entry in kustomization.get("resources", []):
        path = (folder / entry).resolve()
        resources += render(path) if path.is_dir() else load_all(path)
    for patch_entry in kustomization.get("patches", []):
        assert set(patch_entry) == {"path"}, patch_entry
        (patch,) = load_all(folder / patch_entry["path"])
        at = [
            i
            for i, r in enumerate(resources)
            if (r["kind"], r["metadata"]["name"]) == (patch["kind"], patch["metadata"]["name"])
        ]
        assert len(at) == 1, f"{patch_entry['path']} matches {len(at)} resources"
        resources[at[0]] = merge(resources[at[0]], patch)
    for resource in resources:
        set_images(resource, kustomization.get("images", []))
    return resources


def by_kind(resources: list[dict]) -> dict[str, dict]:
    kinds = [r["kind"] for r in resources]
    assert len(kinds) == len(set(kinds)), kinds
    return {r["kind"]: r for r in resources}


# --- the container image ----------------------------------------------------------------------

IMAGE = os.environ.get("VISION_IMAGE", "localhost/vision:cpu")
# What this sandbox needs (no CAP_SYS_RESOURCE; crun fails on hybrid cgroups); harmless elsewhere.
RUN_OPTIONS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"]
PODMAN = ["podman", "--runtime", "runc"] if shutil.which("runc") else ["podman"]


def podman(*args: str, timeout: float = 120, check: bool = True) -> str:
    done = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"podman {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


def print_report(request, label: str, report: dict) -> None:
    """A container test's figures, printed past pytest's capture at the end of its module."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print()
        for key, value in report.items():
            print(f"{label} report: {key}: {value}")


def build_image(report: dict) -> None:
    """Builds IMAGE with deploy/image/build.sh, as `make image` does; its time goes in `report`."""
    start = time.monotonic()
    done = subprocess.run(
        [str(ROOT / "deploy" / "image" / "build.sh"), IMAGE], cwd=ROOT, capture_output=True, text=True, timeout=3600
    )
    assert done.returncode == 0, f"build.sh failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    report["build"] = f"{time.monotonic() - start:.0f} s (build.sh: {done.stdout.strip().splitlines()[-1]})"
