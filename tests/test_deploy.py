"""deploy/k8s, offline and fast: every manifest against the Kubernetes schemas (kubernetes-validate
bundles them), the GPU overlay rendered (a small kustomize for the features used here, compared with
the real `kubectl kustomize` where it is installed), and the probes, port, environment and grace
period checked against the service and BentoML."""

import ast
import copy
import re
import shutil
import subprocess
import types
from pathlib import Path

import pytest
import yaml
from deployment import BASE, GPU, K8S, by_kind, load_all, merge, render
from service_models import ROOT

from service.settings import Settings, SettingsError

RENDERED = {"base": render(BASE), "gpu": render(GPU)}  # tests/deployment.py's small kustomize


# --- schemas --------------------------------------------------------------------------------------


def kubernetes_versions() -> list[str]:
    from kubernetes_validate.utils import latest_version

    return sorted({"1.29.0", latest_version()})  # an older cluster, and the newest schemas bundled


@pytest.mark.parametrize("version", kubernetes_versions())
@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_every_manifest_is_valid_against_the_kubernetes_schemas(variant, version):
    """Strict: an unknown or misspelt field fails too. The schemas ship in the package (offline)."""
    import kubernetes_validate

    resources = RENDERED[variant]
    assert {r["kind"] for r in resources} == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    for resource in resources:
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            pytest.fail(f"{variant}: {resource['kind']}/{resource['metadata']['name']}: {path}: {e.message}")


def test_the_base_files_are_valid_one_by_one_and_the_validator_catches_a_typo():
    import kubernetes_validate

    for path in sorted(BASE.glob("*.yaml")):
        for resource in load_all(path):
            if resource["kind"] != "Kustomization":
                kubernetes_validate.validate(resource, "1.29.0", strict=True)
    deployment = copy.deepcopy(by_kind(RENDERED["base"])["Deployment"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"path": "/readyz"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.29.0", strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed (the small kustomize still ran)")
@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_the_small_kustomize_renders_what_kubectl_kustomize_does(variant):
    done = subprocess.run(["kubectl", "kustomize", str(K8S / variant)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    theirs = {(r["kind"], r["metadata"]["name"]): r for r in yaml.safe_load_all(done.stdout) if r}
    ours = {(r["kind"], r["metadata"]["name"]): r for r in RENDERED[variant]}
    assert ours == theirs


# --- the manifests against the service ------------------------------------------------------------


def container(variant: str) -> dict:
    (only,) = by_kind(RENDERED[variant])["Deployment"]["spec"]["template"]["spec"]["containers"]
    return only


def bentoml_system_paths() -> set[str]:
    from bentoml._internal.server.base_app import BaseAppFactory

    handlers = types.SimpleNamespace(livez=None, readyz=None, metrics=None)
    return {route.path for route in BaseAppFactory.get_system_routes(handlers)}


def literal(node: ast.AST):
    """A keyword's value where it is a literal (a dict's non-literal values become None)."""
    if isinstance(node, ast.Dict):
        return {literal(k): literal(v) for k, v in zip(node.keys, node.values)}
    try:
        return ast.literal_eval(node)
    except ValueError:  # e.g. settings.workers: read at start-up
        return None


def service_decorator_keywords() -> dict:
    """The keywords of `@bentoml.service(...)` in service/service.py, read without importing it."""
    tree = ast.parse((ROOT / "service" / "service.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "bentoml.service":
                    return {k.arg: literal(k.value) for k in decorator.keywords}
    raise AssertionError("no @bentoml.service class in service/service.py")


@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_probes_and_port_match_the_service(variant):
    from bentoml._internal.configuration.containers import BentoMLContainer

    port = BentoMLContainer.http.port.get()  # what `bentoml serve` in the image listens on
    assert port == 3000
    c = container(variant)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": port}
    paths = bentoml_system_paths()
    assert {"/livez", "/readyz", "/metrics"} <= paths
    for probe, path in (("startupProbe", "/readyz"), ("readinessProbe", "/readyz"), ("livenessProbe", "/livez")):
        get = c[probe]["httpGet"]
        assert get["path"] == path and get["path"] in paths, (probe, get)
        assert ports.get(get["port"], get["port"]) == port, (probe, get)
    service = by_kind(RENDERED[variant])["Service"]
    (service_port,) = service["spec"]["ports"]
    assert ports.get(service_port["targetPort"], service_port["targetPort"]) == port
    pod = by_kind(RENDERED[variant])["Deployment"]["spec"]["template"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port) and annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_the_environment_is_settings_the_service_reads_with_valid_values(variant, tmp_path):
    env = {e["name"]: e["value"] for e in container(variant)["env"] if e["name"].startswith("VISION_")}
    read = set(re.findall(r'"(VISION_[A-Z0-9_]+)"', (ROOT / "service" / "settings.py").read_text()))
    assert set(env) <= read, set(env) - read
    keys_file = tmp_path / "keys"  # the mounted Secret's file, with a key in it
    keys_file.write_text("a-key-of-43-characters-as-token-urlsafe-32x\n")
    try:
        settings = Settings.from_environment({**env, "VISION_API_KEYS_FILE": str(keys_file)})
    except SettingsError as e:
        pytest.fail(f"{variant}: {e}")
    assert settings.provider == {"base": "cpu", "gpu": "cuda"}[variant]


@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_api_keys_come_from_a_mounted_secret_and_the_probes_need_none(variant):
    from service.auth import is_open

    c = container(variant)
    pod = by_kind(RENDERED[variant])["Deployment"]["spec"]["template"]["spec"]
    path = Path({e["name"]: e.get("value") for e in c["env"]}["VISION_API_KEYS_FILE"])
    (mount,) = [m for m in c["volumeMounts"] if Path(m["mountPath"]) == path.parent]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    (example,) = load_all(BASE / "api-keys-secret.example.yaml")
    assert volume["secret"]["secretName"] == example["metadata"]["name"]
    assert {"key": "keys", "path": path.name} in volume["secret"]["items"] and "keys" in example["stringData"]
    assert "api-keys-secret.example.yaml" not in (BASE / "kustomization.yaml").read_text()  # never applied by -k
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert is_open(c[probe]["httpGet"]["path"]), probe


def test_the_example_secrets_placeholder_is_refused_by_the_service(tmp_path):
    (example,) = load_all(BASE / "api-keys-secret.example.yaml")
    placeholder = tmp_path / "keys"
    placeholder.write_text(example["stringData"]["keys"])
    with pytest.raises(SettingsError, match="characters, under 16"):
        Settings.from_environment({"VISION_API_KEYS_FILE": str(placeholder)})


@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_pods_run_as_the_image_user_and_outlive_bentomls_drain(variant):
    from bentoml._internal.container.generate import DEFAULT_BENTO_ENVS

    pod = by_kind(RENDERED[variant])["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == DEFAULT_BENTO_ENVS["uid_gid"]  # BentoML's `bentoml` user
    c = container(variant)
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    # SIGTERM: in-flight requests finish, each bounded by the service's request timeout.
    pause = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
    timeout = service_decorator_keywords()["traffic"]["timeout"]
    assert pod["terminationGracePeriodSeconds"] >= pause + timeout + 5, (pause, timeout)
    start = c["startupProbe"]
    assert start["periodSeconds"] * start["failureThreshold"] >= 60  # cold start measured ~11 s on 2 CPUs


QUANTITY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def quantity(text: str) -> int:
    return int(text[:-2]) * QUANTITY[text[-2:]] if text[-2:] in QUANTITY else int(text)


@pytest.mark.parametrize("variant", sorted(RENDERED))
def test_pods_are_locked_down_and_write_only_to_an_emptydir(variant):
    """Non-root, no privilege, no capability, the runtime's seccomp profile, no service-account
    token, a read-only root filesystem; what BentoML writes goes to bounded emptyDir volumes."""
    pod = by_kind(RENDERED[variant])["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert not any(pod.get(host) for host in ("hostNetwork", "hostPID", "hostIPC"))
    c = container(variant)
    context = c["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context.get("privileged") is not True and context.get("runAsUser", 1) != 0
    assert context["capabilities"] == {"drop": ["ALL"]}  # none added back
    volumes = {v["name"]: v for v in pod["volumes"]}
    writable = [m for m in c["volumeMounts"] if not m.get("readOnly")]
    assert writable and all("emptyDir" in volumes[m["name"]] for m in writable), writable
    paths = {Path(m["mountPath"]): volumes[m["name"]]["emptyDir"] for m in writable}
    assert Path("/tmp") in paths  # Python's tempfile: BentoML's sockets and the uploads it spools
    env = {e["name"]: e.get("value") for e in c["env"]}
    home = Path(env["BENTOML_HOME"])
    assert any(home.is_relative_to(path) for path in paths), home  # BentoML makes its folders at start
    build = (ROOT / "deploy" / "image" / "build.sh").read_text()
    assert f"--env BENTOML_HOME={home} " in build  # the image's too (CPU and CUDA: build.sh sets it)
    # Bounded, so a runaway writer gets the pod evicted before it fills the node's disk; room for
    # BentoML's metrics files (a few MiB: uploads stay in memory and never reach /tmp).
    for path, volume in paths.items():
        assert 64 * 2**20 <= quantity(volume["sizeLimit"]) <= 2**30, (path, volume)


def test_the_selectors_and_targets_agree():
    for variant, resources in RENDERED.items():
        kinds = by_kind(resources)
        deployment = kinds["Deployment"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selectors = [
            deployment["spec"]["selector"]["matchLabels"],
            kinds["Service"]["spec"]["selector"],
            kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        ]
        for selector in selectors:
            assert selector.items() <= labels.items(), (variant, selector)
        target = kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
        hpa = kinds["HorizontalPodAutoscaler"]["spec"]
        assert 1 <= hpa["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["maxReplicas"], variant
        assert "requests" in container(variant)["resources"] and "cpu" in container(variant)["resources"]["requests"]


def test_the_gpu_overlay_asks_for_one_gpu_and_the_cuda_image():
    cpu, gpu = container("base"), container("gpu")
    assert cpu["image"] == "localhost/vision:cpu"  # what `make image` builds
    assert gpu["image"] == "localhost/vision:gpu"
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in str(cpu["resources"])
    tolerations = by_kind(RENDERED["gpu"])["Deployment"]["spec"]["template"]["spec"]["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    # Everything else is the base's: probes, port, other settings.
    for key in ("ports", "readinessProbe", "livenessProbe", "lifecycle"):
        assert cpu[key] == gpu[key], key
    assert {**cpu["startupProbe"], "failureThreshold": 0} == {**gpu["startupProbe"], "failureThreshold": 0}
    assert [e for e in cpu["env"] if e["name"] != "VISION_PROVIDER"] == [
        e for e in gpu["env"] if e["name"] != "VISION_PROVIDER"
    ]
    # The overlay retags the base's image, so its `images` name must be the base's newName.
    base_images = yaml.safe_load((BASE / "kustomization.yaml").read_text())["images"]
    gpu_images = yaml.safe_load((GPU / "kustomization.yaml").read_text())["images"]
    assert [i["name"] for i in gpu_images] == [i["newName"] for i in base_images]


def test_the_small_merge_merges_named_lists_and_replaces_others():
    base = {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "args": ["x"], "m": {"a": 1}}
    patch = {"env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}], "args": ["y"], "m": {"b": 2}}
    assert merge(base, patch) == {
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
        "args": ["y"],
        "m": {"a": 1, "b": 2},
    }
