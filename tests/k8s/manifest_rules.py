"""Our own rules for the production manifests in ``k8s/`` (beyond the Kubernetes schemas).

``load_bundle()`` reads every YAML file under ``k8s/``; ``check_rules(bundle)`` returns one
message per violation (an empty list: all rules hold). The rules are plain functions over the
parsed resources, so a test can break a copy of the bundle and expect a violation.

The network-policy rule evaluates the policies the way Kubernetes does (policies add up; a pod
selected by no policy of a direction is open in that direction) for a table of flows that
must be allowed and flows that must be denied.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "k8s"
NAMESPACE = "adfatigue"
SECRET_TEMPLATE_DIR = "secret-templates"
POD_OWNER_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
#: Words no manifest may contain: local-only pieces (DESIGN.md §5) never reach production.
FORBIDDEN_WORDS = ("secantus", "meta_sandbox", "meta-sandbox")
#: The services' modules, their Deployments and the gRPC port each listens on.
SERVICES = {
    "cache_gateway": ("cache-gateway", 50051),
    "meta_fetcher": ("meta-fetcher", 50052),
    "fatigue_engine": ("fatigue-engine", 50053),
    "scheduler": ("scheduler", 50054),
}
#: HTTP services: module -> (Deployment, port, the path of its HTTP probes).
HTTP_SERVICES = {"bff": ("bff", 8080, "/healthz")}
#: Settings every service needs in production: TLS on its gRPC server and channels (services/common/tls.py).
TLS_ENV = ("GRPC_TLS_CERT", "GRPC_TLS_KEY", "GRPC_TLS_CA", "GRPC_HEALTH_PORT")
#: Settings each service needs in production (names from the services' settings).
REQUIRED_ENV = {
    "cache_gateway": ("MONGODB_URI", "MONGODB_DB", "REDIS_URL", "JWT_PUBLIC_KEY", "ADFATIGUE_SERVICE_TOKEN",
                      "ADFATIGUE_FETCHER_ADDR",
                      "ADFATIGUE_ENGINE_ADDR", "L1_MAX_BYTES", "FRESHNESS_PARTIAL_SECONDS"),
    "meta_fetcher": ("MONGODB_URI", "REDIS_URL", "JWT_PUBLIC_KEY", "META_API_VERSION", "META_ACCESS_TOKEN", "META_APP_SECRET",
                     "TOKEN_KEYS", "TOKEN_ACTIVE_KEY", "META_BUDGET_CALLS"),
    "fatigue_engine": ("JWT_PUBLIC_KEY",),
    "scheduler": ("MONGODB_URI", "REDIS_URL", "JWT_PUBLIC_KEY", "ADFATIGUE_SERVICE_TOKEN", "ADFATIGUE_GATEWAY_ADDR",
                  "SCHEDULER_INTERVAL_SECONDS", "META_BUDGET_CALLS"),
    # behind oauth2-proxy on loopback; signs the gateway tokens with its own key (no HS256 secret)
    "bff": ("BFF_GATEWAY_ADDR", "BFF_SESSION_SECRET", "BFF_GATEWAY_SIGNING_KEY", "BFF_GATEWAY_SIGNING_KID",
            "BFF_PUBLIC_URL", "JWT_AUDIENCE", "METRICS_PORT"),
}
#: What the BFF's sign-in must be in production: the proxy's header, believed from loopback only.
BFF_SIGN_IN_ENV = {"BFF_SIGN_IN": "proxy-header", "BFF_PROXY_USER_HEADER": "X-Forwarded-Email",
                   "BFF_PROXY_TRUSTED_IPS": "127.0.0.1,::1"}
#: Secret keys only meta_fetcher may see (Meta credentials and the token vault keys).
FETCHER_ONLY_ENV = ("META_ACCESS_TOKEN", "META_APP_SECRET", "TOKEN_KEYS", "TOKEN_ACTIVE_KEY")
#: Local-run settings that must never be set in production.
DEV_ONLY_ENV = ("JWT_HS256_SECRET", "PROVIDER_CSV")


@dataclass
class Bundle:
    """Everything under k8s/: parsed resources (with their file), kustomizations and raw texts."""

    resources: list[tuple[str, dict]]
    kustomizations: dict[str, dict]          # folder relative to k8s/ ("" = k8s/) -> kustomization
    texts: dict[str, str]                    # file relative to k8s/ -> its text
    project_version: str = "0.1.0"

    def of_kind(self, *kinds: str) -> Iterator[tuple[str, dict]]:
        return ((path, r) for path, r in self.resources if r.get("kind") in kinds)

    def get(self, kind: str, name: str) -> dict | None:
        return next((r for _, r in self.of_kind(kind) if r.get("metadata", {}).get("name") == name), None)


def folder_of(rel: str) -> str:
    """The folder of a path relative to k8s/ ("" for k8s/ itself)."""
    parent = Path(rel).parent.as_posix()
    return "" if parent == "." else parent


def load_bundle(base: Path = K8S_DIR) -> Bundle:
    resources: list[tuple[str, dict]] = []
    kustomizations: dict[str, dict] = {}
    texts: dict[str, str] = {}
    for path in sorted(base.rglob("*.yaml")):
        rel = path.relative_to(base).as_posix()
        text = path.read_text()
        texts[rel] = text
        for doc in yaml.safe_load_all(text):
            if doc is None:
                continue
            if doc.get("kind") == "Kustomization":
                kustomizations[folder_of(rel)] = doc
            else:
                resources.append((rel, doc))
    with open(ROOT / "pyproject.toml", "rb") as f:
        version = tomllib.load(f)["project"]["version"]
    return Bundle(resources, kustomizations, texts, version)


# --- helpers over pod templates -------------------------------------------------------------

def name_of(resource: dict) -> str:
    return resource.get("metadata", {}).get("name", "?")


def ident(path: str, resource: dict) -> str:
    return f"k8s/{path} {resource.get('kind')}/{name_of(resource)}"


def pod_template(resource: dict) -> dict:
    spec = resource.get("spec", {})
    if resource.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec.get("template", {})


def pod_spec(resource: dict) -> dict:
    return pod_template(resource).get("spec", {})


def pod_labels(resource: dict) -> dict:
    return pod_template(resource).get("metadata", {}).get("labels", {}) or {}


def containers(resource: dict, init: bool = True) -> list[dict]:
    spec = pod_spec(resource)
    return list(spec.get("containers", [])) + (list(spec.get("initContainers", [])) if init else [])


def container_ports(resource: dict) -> dict[str | int, int]:
    """Every containerPort of the pod, by number and by name."""
    ports: dict[str | int, int] = {}
    for c in containers(resource, init=False):
        for p in c.get("ports", []):
            ports[p["containerPort"]] = p["containerPort"]
            if p.get("name"):
                ports[p["name"]] = p["containerPort"]
    return ports


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector against labels ({} selects everything)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def workloads_selected(bundle: Bundle, selector: dict | None, namespace: str) -> list[dict]:
    return [r for _, r in bundle.of_kind(*POD_OWNER_KINDS)
            if r.get("metadata", {}).get("namespace") == namespace and selector_matches(selector, pod_labels(r))]


def app_module(container: dict) -> str | None:
    """``cache_gateway`` for ``python -m services.cache_gateway ...``, else None."""
    command = container.get("command") or []
    if len(command) >= 3 and command[:2] == ["python", "-m"] and command[2].startswith("services."):
        return command[2].removeprefix("services.")
    return None


_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined variables are replaced, ``$$`` is a literal ``$``,
    undefined references stay as they are."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        m = _VAR.match(value, i)
        if m and m.group(1) in env:
            out.append(env[m.group(1)])
            i = m.end()
            continue
        out.append(value[i])
        i += 1
    return "".join(out)


def unresolved(value: str, env: dict[str, str]) -> list[str]:
    return [m.group(1) for m in _VAR.finditer(value.replace("$$", "")) if m.group(1) not in env]


def data_of(resource: dict) -> dict[str, str]:
    """A ConfigMap's data or a Secret's stringData (+ data keys)."""
    data = dict(resource.get("data") or {})
    data.update(resource.get("stringData") or {})
    return {k: str(v) for k, v in data.items()}


def container_env(bundle: Bundle, container: dict, namespace: str = NAMESPACE) -> dict[str, str]:
    """The environment a container starts with (Secrets: their placeholder values), expanded."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in source:
                ref = bundle.get(kind, source[key]["name"])
                env.update({source.get("prefix", "") + k: v for k, v in data_of(ref or {}).items()})
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = expand(str(item["value"]), env)
        elif "valueFrom" in item:
            for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                ref = item["valueFrom"].get(key)
                if ref:
                    env[item["name"]] = data_of(bundle.get(kind, ref["name"]) or {}).get(ref["key"], "")
    return env


# --- the rules --------------------------------------------------------------------------------

Rule = Callable[[Bundle], Iterator[str]]
RULES: list[Rule] = []


def rule(fn: Rule) -> Rule:
    RULES.append(fn)
    return fn


def check_rules(bundle: Bundle) -> list[str]:
    return [message for fn in RULES for message in fn(bundle)]


@rule
def namespaced(bundle: Bundle) -> Iterator[str]:
    if bundle.get("Namespace", NAMESPACE) is None:
        yield f"no Namespace {NAMESPACE}"
    for path, r in bundle.resources:
        if r.get("kind") != "Namespace" and r.get("metadata", {}).get("namespace") != NAMESPACE:
            yield f"{ident(path, r)}: metadata.namespace must be {NAMESPACE}"


@rule
def hardened_containers(bundle: Bundle) -> Iterator[str]:
    """Probes on long-running containers; resources, non-root, read-only, no capabilities, tags."""
    for path, r in bundle.of_kind(*POD_OWNER_KINDS):
        spec = pod_spec(r)
        pod_sc = spec.get("securityContext") or {}
        if spec.get("automountServiceAccountToken") is not False:
            yield f"{ident(path, r)}: automountServiceAccountToken must be false (no pod talks to the API server)"
        if (pod_sc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            yield f"{ident(path, r)}: pod securityContext.seccompProfile must be RuntimeDefault"
        main = {c["name"] for c in spec.get("containers", [])}
        for c in containers(r):
            where = f"{ident(path, r)} container {c.get('name')}"
            if c["name"] in main and r["kind"] in WORKLOAD_KINDS:
                for probe in ("livenessProbe", "readinessProbe"):
                    if not c.get(probe):
                        yield f"{where}: no {probe}"
            resources = c.get("resources") or {}
            for part in ("requests", "limits"):
                for res in ("cpu", "memory"):
                    if res not in (resources.get(part) or {}):
                        yield f"{where}: no resources.{part}.{res}"
            sc = c.get("securityContext") or {}
            if not (sc.get("runAsNonRoot") is True or (pod_sc.get("runAsNonRoot") is True
                                                        and sc.get("runAsNonRoot") is not False)):
                yield f"{where}: runAsNonRoot must be true"
            if sc.get("runAsUser", pod_sc.get("runAsUser")) in (None, 0):
                yield f"{where}: runAsUser must be a non-zero uid"
            if sc.get("allowPrivilegeEscalation") is not False:
                yield f"{where}: allowPrivilegeEscalation must be false"
            if sc.get("readOnlyRootFilesystem") is not True:
                yield f"{where}: readOnlyRootFilesystem must be true"
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                yield f"{where}: capabilities.drop must contain ALL"
            if sc.get("privileged"):
                yield f"{where}: must not be privileged"
            image = c.get("image", "")
            repo_and_tag = image.split("@")[0].rsplit("/", 1)[-1]
            if ":" not in repo_and_tag and "@" not in image:
                yield f"{where}: image {image!r} has no tag"
            elif repo_and_tag.endswith(":latest"):
                yield f"{where}: image {image!r} uses the latest tag"


@rule
def app_containers(bundle: Bundle) -> Iterator[str]:
    """One image at the project's version; the required command; ports and gRPC probes agree."""
    seen: set[str] = set()
    for path, r in bundle.of_kind(*POD_OWNER_KINDS):
        for c in containers(r):
            image = c.get("image", "")
            module = app_module(c)
            if not image.startswith("adfatigue:") and module is None:
                continue
            where = f"{ident(path, r)} container {c.get('name')}"
            if image != f"adfatigue:{bundle.project_version}":
                yield f"{where}: image must be adfatigue:{bundle.project_version} (the pyproject version), not {image!r}"
            if module in HTTP_SERVICES:
                seen.add(module)
                yield from _http_app_container(r, c, where, module)
                continue
            if module not in SERVICES:
                yield f"{where}: command must be python -m services.<one of {sorted({*SERVICES, *HTTP_SERVICES})}>"
                continue
            seen.add(module)
            deployment, port = SERVICES[module]
            yield from _runs_module(r, c, where, module, deployment, port)
            # with TLS the gRPC port speaks TLS only: probes use the plaintext health-only port
            health = container_env(bundle, c).get("GRPC_HEALTH_PORT")
            probe_port = int(health) if health and health.isdigit() else port
            if probe_port not in {p.get("containerPort") for p in c.get("ports", [])}:
                yield f"{where}: the probe port {probe_port} (GRPC_HEALTH_PORT) is not one of its containerPorts"
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                spec = c.get(probe)
                if spec is not None and (spec.get("grpc") or {}).get("port") != probe_port:
                    yield f"{where}: {probe} must be a native gRPC probe on port {probe_port}"
    for module in sorted({*SERVICES, *HTTP_SERVICES} - seen):
        yield f"no Deployment runs services.{module}"


def _runs_module(r: dict, c: dict, where: str, module: str, deployment: str, port: int) -> Iterator[str]:
    """The container runs ``python -m services.<module>`` on ``port`` in Deployment/``deployment``, flags in command."""
    if r["kind"] != "Deployment" or name_of(r) != deployment:
        yield f"{where}: services.{module} belongs in Deployment/{deployment}"
    expected = ["python", "-m", f"services.{module}", "--host", "0.0.0.0", "--port", str(port)]
    if (c.get("command") or [])[:7] != expected:
        yield f"{where}: command must start with {expected}"
    if c.get("args"):
        yield f"{where}: put every flag in command (args would be appended after it)"


def _http_app_container(r: dict, c: dict, where: str, module: str) -> Iterator[str]:
    """An HTTP service (the BFF): its Deployment, command, HTTP probes on its port, 2+ replicas."""
    deployment, port, probe_path = HTTP_SERVICES[module]
    yield from _runs_module(r, c, where, module, deployment, port)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = (c.get(probe) or {}).get("httpGet") or {}
        if c.get(probe) is not None and (get.get("port"), get.get("path")) != (port, probe_path):
            yield f"{where}: {probe} must be an HTTP GET of {probe_path} on port {port}"
    if (r.get("spec") or {}).get("replicas", 1) < 2:
        yield f"{where}: Deployment/{deployment} needs replicas >= 2"


@rule
def ports_match_port_flags(bundle: Bundle) -> Iterator[str]:
    for path, r in bundle.of_kind(*POD_OWNER_KINDS):
        for c in containers(r, init=False):
            argv = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
            declared = {p["containerPort"] for p in c.get("ports", [])}
            for i, arg in enumerate(argv):
                value = argv[i + 1] if arg == "--port" and i + 1 < len(argv) else (
                    arg.split("=", 1)[1] if arg.startswith("--port=") else None)
                if value is None:
                    continue
                if not value.isdigit() or int(value) not in declared:
                    yield (f"{ident(path, r)} container {c['name']}: --port {value} is not one of its "
                           f"containerPorts {sorted(declared)}")


@rule
def services_select_pods(bundle: Bundle) -> Iterator[str]:
    for path, svc in bundle.of_kind("Service"):
        selector = (svc.get("spec") or {}).get("selector")
        if not selector:
            yield f"{ident(path, svc)}: has no selector"
            continue
        targets = workloads_selected(bundle, {"matchLabels": selector}, svc["metadata"].get("namespace"))
        if not targets:
            yield f"{ident(path, svc)}: selector {selector} selects no pods of any workload"
            continue
        for port in svc["spec"].get("ports", []):
            target = port.get("targetPort", port.get("port"))
            for w in targets:
                if target not in container_ports(w):
                    yield f"{ident(path, svc)}: targetPort {target!r} is no containerPort of {w['kind']}/{name_of(w)}"


@rule
def statefulsets_have_headless_services(bundle: Bundle) -> Iterator[str]:
    for path, sts in bundle.of_kind("StatefulSet"):
        svc = bundle.get("Service", sts["spec"].get("serviceName", ""))
        if svc is None or svc["spec"].get("clusterIP") != "None":
            yield f"{ident(path, sts)}: serviceName must name a headless Service"
        elif not selector_matches({"matchLabels": svc["spec"].get("selector")}, pod_labels(sts)):
            yield f"{ident(path, sts)}: its headless Service does not select its pods"


@rule
def autoscaling(bundle: Bundle) -> Iterator[str]:
    for path, hpa in bundle.of_kind("HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        target = bundle.get(ref["kind"], ref["name"])
        if target is None:
            yield f"{ident(path, hpa)}: HPA targets {ref['kind']}/{ref['name']}, which does not exist"
        elif "replicas" in target["spec"]:
            yield (f"{ident(path, hpa)}: HPA target {ref['kind']}/{ref['name']} sets spec.replicas; "
                   "leave it to the HPA so an apply does not undo a scale-out")
    gateway_hpas = [h for _, h in bundle.of_kind("HorizontalPodAutoscaler")
                    if h["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                       "name": "cache-gateway"}]
    if not gateway_hpas:
        yield "no HPA targets Deployment/cache-gateway"
    for h in gateway_hpas:
        if h["spec"].get("minReplicas", 1) < 2:
            yield "the cache-gateway HPA must keep minReplicas >= 2"
        if not any(m.get("type") == "Resource" and m["resource"]["name"] == "cpu" for m in h["spec"].get("metrics", [])):
            yield "the cache-gateway HPA must scale on CPU"


@rule
def replica_counts(bundle: Bundle) -> Iterator[str]:
    expected = {("Deployment", "scheduler"): 2, ("StatefulSet", "mongodb"): 3}
    for (kind, name), count in expected.items():
        r = bundle.get(kind, name)
        if r is None:
            yield f"no {kind}/{name}"
        elif r["spec"].get("replicas") != count:
            yield f"{kind}/{name} must have replicas: {count}, not {r['spec'].get('replicas')}"


@rule
def disruption_budgets(bundle: Bundle) -> Iterator[str]:
    for path, pdb in bundle.of_kind("PodDisruptionBudget"):
        if not workloads_selected(bundle, pdb["spec"].get("selector"), pdb["metadata"].get("namespace")):
            yield f"{ident(path, pdb)}: PDB selects no workload"
    want = {"cache-gateway": ("minAvailable", 1), "mongodb": ("maxUnavailable", 1)}
    for workload, (field_name, value) in want.items():
        ok = any(pdb["spec"].get(field_name) == value and selector_matches(pdb["spec"].get("selector"), pod_labels(w))
                 for _, pdb in bundle.of_kind("PodDisruptionBudget")
                 for w in [bundle.get("Deployment", workload) or bundle.get("StatefulSet", workload) or {}])
        if not ok:
            yield f"no PDB with {field_name}: {value} for {workload}"


@rule
def no_local_only_pieces(bundle: Bundle) -> Iterator[str]:
    """Neither the files (comments included) nor the resources mention local-only pieces."""
    for path, text in bundle.texts.items():
        lowered = text.lower()
        for word in FORBIDDEN_WORDS:
            if word in lowered:
                yield f"k8s/{path}: mentions {word!r} (local runs only, never production)"
    for path, r in bundle.resources:
        lowered = yaml.safe_dump(r).lower()
        for word in FORBIDDEN_WORDS:
            if word in lowered:
                yield f"{ident(path, r)}: mentions {word!r} (local runs only, never production)"


@rule
def kustomizations_list_every_file(bundle: Bundle) -> Iterator[str]:
    for folder in sorted({folder_of(p) for p in bundle.texts}):
        files = {Path(p).name for p in bundle.texts if folder_of(p) == folder}
        files.discard("kustomization.yaml")
        kustomization = bundle.kustomizations.get(folder)
        where = f"k8s/{folder + '/' if folder else ''}kustomization.yaml"
        if kustomization is None:
            yield f"{where}: missing"
            continue
        listed = set(kustomization.get("resources") or [])
        for name in sorted(files - listed):
            yield f"{where}: {name} is not listed in resources"
        for name in sorted(listed - files):
            yield f"{where}: lists {name}, which does not exist"


@rule
def secrets_are_templates(bundle: Bundle) -> Iterator[str]:
    top = set((bundle.kustomizations.get("") or {}).get("resources") or [])
    for path, secret in bundle.of_kind("Secret"):
        if not path.startswith(f"{SECRET_TEMPLATE_DIR}/") or path in top:
            yield (f"{ident(path, secret)}: Secrets belong in k8s/{SECRET_TEMPLATE_DIR}/ only, so that "
                   "`kubectl apply -k k8s/` never overwrites the real ones")
        if secret.get("data"):
            yield f"{ident(path, secret)}: use stringData placeholders, not data"
        for key, value in (secret.get("stringData") or {}).items():
            if key.endswith("USERNAME"):
                continue
            if "REPLACE_ME" not in str(value):
                yield f"{ident(path, secret)}: {key} must be a REPLACE_ME placeholder, never a real value"


@rule
def references_resolve(bundle: Bundle) -> Iterator[str]:
    """ConfigMaps, Secrets, keys and claims that pods refer to exist; $(VAR)s are defined."""
    for path, r in bundle.of_kind(*POD_OWNER_KINDS):
        spec = pod_spec(r)
        for volume in spec.get("volumes", []):
            for kind, key, name_key in (("ConfigMap", "configMap", "name"), ("Secret", "secret", "secretName"),
                                        ("PersistentVolumeClaim", "persistentVolumeClaim", "claimName")):
                if key in volume and bundle.get(kind, volume[key][name_key]) is None:
                    yield f"{ident(path, r)}: volume {volume['name']} refers to missing {kind}/{volume[key][name_key]}"
        for c in containers(r):
            where = f"{ident(path, r)} container {c['name']}"
            for source in c.get("envFrom", []):
                for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if key in source and bundle.get(kind, source[key]["name"]) is None:
                        yield f"{where}: envFrom refers to missing {kind}/{source[key]['name']}"
            defined: dict[str, str] = {}
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    defined.update(data_of(bundle.get("ConfigMap", source["configMapRef"]["name"]) or {}))
            for item in c.get("env", []):
                for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                    ref = (item.get("valueFrom") or {}).get(key)
                    if ref:
                        obj = bundle.get(kind, ref["name"])
                        if obj is None or ref["key"] not in data_of(obj):
                            yield f"{where}: env {item['name']} refers to missing {kind}/{ref['name']} key {ref['key']}"
                for var in unresolved(str(item.get("value", "")), defined):
                    yield f"{where}: env {item['name']} uses undefined $({var})"
                defined[item["name"]] = "x"
            for arg in (c.get("command") or []) + (c.get("args") or []):
                for var in unresolved(str(arg), defined):
                    yield f"{where}: command uses undefined $({var})"


@rule
def production_settings(bundle: Bundle) -> Iterator[str]:
    for path, r in bundle.of_kind(*POD_OWNER_KINDS):
        for c in containers(r):
            env = container_env(bundle, c)
            where = f"{ident(path, r)} container {c['name']}"
            for name in DEV_ONLY_ENV:
                if name in env:
                    yield f"{where}: sets {name}, a local-run setting"
            if "MONGODB_URI" in env and "replicaSet=" not in env["MONGODB_URI"]:
                yield f"{where}: MONGODB_URI has no replicaSet= (change streams need a replica set)"
            module = app_module(c)
            if module is None:
                continue
            for name in (*REQUIRED_ENV.get(module, ()), *TLS_ENV):
                if not env.get(name):
                    yield f"{where}: services.{module} needs {name}"
            if module in HTTP_SERVICES:
                for name, value in BFF_SIGN_IN_ENV.items():
                    if env.get(name) != value:
                        yield f"{where}: {name} must be {value!r} (oauth2-proxy in the pod, on loopback)"
                proxies = [x for x in containers(r) if "oauth2-proxy" in x.get("image", "")]
                upstreams = [a for x in proxies for a in x.get("args", []) if a.startswith("--upstream=")]
                if upstreams != [f"--upstream=http://127.0.0.1:{HTTP_SERVICES[module][1]}/"]:
                    yield f"{where}: needs an oauth2-proxy sidecar whose --upstream is the BFF on 127.0.0.1"
            if module != "meta_fetcher":
                for name in FETCHER_ONLY_ENV:
                    if name in env:
                        yield f"{where}: {name} is for meta_fetcher only"
            if module == "fatigue_engine" and any("secretKeyRef" in (i.get("valueFrom") or {})
                                                  for i in c.get("env", []) if i["name"] != "JWT_PUBLIC_KEY"):
                yield f"{where}: fatigue_engine needs no secrets but the key to check its callers' tokens"


@rule
def addresses_point_at_services(bundle: Bundle) -> Iterator[str]:
    config = data_of(bundle.get("ConfigMap", "adfatigue-config") or {})
    for key in ("ADFATIGUE_FETCHER_ADDR", "ADFATIGUE_ENGINE_ADDR", "ADFATIGUE_GATEWAY_ADDR"):
        host, _, port = config.get(key, ":").rpartition(":")
        svc = bundle.get("Service", host.split(".")[0])
        if svc is None or not any(str(p["port"]) == port for p in svc["spec"]["ports"]):
            yield f"adfatigue-config {key}={config.get(key)!r} is no Service port"
    redis = re.match(r"rediss?://([^:/]+):(\d+)", config.get("REDIS_URL", ""))
    svc = bundle.get("Service", redis.group(1).split(".")[0]) if redis else None
    if svc is None or not any(str(p["port"]) == redis.group(2) for p in svc["spec"]["ports"]):
        yield f"adfatigue-config REDIS_URL={config.get('REDIS_URL')!r} is no Service port"
    sts = bundle.get("StatefulSet", "mongodb")
    if sts is not None:
        members = [f"mongodb-{i}.{sts['spec']['serviceName']}.{NAMESPACE}.svc.cluster.local:27017"
                   for i in range(sts["spec"].get("replicas", 0))]
        if config.get("MONGODB_HOSTS", "").split(",") != members:
            yield f"adfatigue-config MONGODB_HOSTS must list the replica set members {members}"
        if f"replicaSet={config.get('MONGODB_REPLICA_SET')}" not in config.get("MONGODB_OPTIONS", "") or \
                "--replSet" not in containers(sts)[0].get("args", []) or \
                config.get("MONGODB_REPLICA_SET") not in containers(sts)[0].get("args", []):
            yield "MONGODB_OPTIONS replicaSet=, MONGODB_REPLICA_SET and mongod --replSet must agree"


@rule
def backups(bundle: Bundle) -> Iterator[str]:
    jobs = list(bundle.of_kind("CronJob"))
    if not jobs:
        yield "no backup CronJob"
    names = {job["metadata"]["name"] for _, job in jobs}
    if "mongodb-backup-hourly" not in names:
        yield "no hourly backup of tokens and audit (RPO < 1 h for what Meta cannot give back)"
    for path, job in jobs:
        fields = job["spec"]["schedule"].split()
        env = {e["name"]: e.get("value") for c in containers(job) for e in c.get("env", [])}
        if job["metadata"]["name"] == "mongodb-backup-hourly":
            if len(fields) != 5 or fields[1:] != ["*", "*", "*", "*"] or not fields[0].isdigit():
                yield f"{ident(path, job)}: must run once an hour (schedule {job['spec']['schedule']!r})"
            if set((env.get("COLLECTIONS") or "").split()) != {"tokens", "audit"}:
                yield f"{ident(path, job)}: must back up the tokens and audit collections (COLLECTIONS)"
        elif len(fields) != 5 or fields[2:] != ["*", "*", "*"] or not fields[0].isdigit() or not fields[1].isdigit():
            yield f"{ident(path, job)}: must run once a day (schedule {job['spec']['schedule']!r})"
        if job["spec"].get("concurrencyPolicy") != "Forbid":
            yield f"{ident(path, job)}: concurrencyPolicy must be Forbid"
        spec = pod_spec(job)
        scripts = "".join(data_of(bundle.get("ConfigMap", v["configMap"]["name"]) or {}).get(k, "")
                          for v in spec.get("volumes", []) if "configMap" in v
                          for k in data_of(bundle.get("ConfigMap", v["configMap"]["name"]) or {}))
        for needle in ("mongodump", "--archive", "--gzip", "RETENTION_DAYS"):
            if needle not in scripts:
                yield f"{ident(path, job)}: its script lacks {needle}"
        if env.get("RETENTION_DAYS") != "30":
            yield f"{ident(path, job)}: RETENTION_DAYS must be 30 (DESIGN.md R11)"
        if not any("persistentVolumeClaim" in v for v in spec.get("volumes", [])):
            yield f"{ident(path, job)}: must write to a PersistentVolumeClaim"
        text = bundle.texts.get(path, "")
        for needle in ("RPO", "RTO", "mongorestore"):
            if needle not in text:
                yield f"k8s/{path}: must note {needle} (DESIGN.md R11) and the restore command"


@rule
def restore_is_explicit(bundle: Bundle) -> Iterator[str]:
    """The restore Job drops data: applying it by accident must do nothing (placeholder ARCHIVE)."""
    job = bundle.get("Job", "mongodb-restore")
    if job is None:
        yield "no restore Job (DESIGN.md R11: a tested restore)"
        return
    env = {e["name"]: e.get("value", "") for c in containers(job) for e in c.get("env", [])}
    if "REPLACE_ME" not in env.get("ARCHIVE", ""):
        yield "Job/mongodb-restore: ARCHIVE must stay a REPLACE_ME placeholder in the repository"
    path = next(p for p, r in bundle.resources if r is job)
    if path in ((bundle.kustomizations.get("") or {}).get("resources") or []):
        yield "Job/mongodb-restore must not be part of `kubectl apply -k k8s/`"


# --- network policies -------------------------------------------------------------------------

@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace + labels + named ports) or an address outside the cluster."""

    namespace: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    ip: str | None = None
    ports: tuple[tuple[str, int], ...] = field(default=(), compare=False)

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


def _peer_matches(peer: dict, policy_namespace: str, ep: Endpoint) -> bool:
    if "ipBlock" in peer:
        if ep.ip is None:
            return False
        addr = ipaddress.ip_address(ep.ip)
        net = ipaddress.ip_network(peer["ipBlock"]["cidr"])
        return addr.version == net.version and addr in net and not any(
            addr in ipaddress.ip_network(e) for e in peer["ipBlock"].get("except", [])
            if ipaddress.ip_network(e).version == addr.version)
    if ep.ip is not None:
        return False
    ns_selector = peer.get("namespaceSelector")
    ns_ok = (ep.namespace == policy_namespace if ns_selector is None
             else selector_matches(ns_selector, {"kubernetes.io/metadata.name": ep.namespace or ""}))
    pod_selector = peer.get("podSelector")
    return ns_ok and (pod_selector is None or selector_matches(pod_selector, ep.label_map))


def _port_matches(ports: list[dict] | None, port: int, protocol: str, dst: Endpoint) -> bool:
    if not ports:
        return True
    for p in ports:
        if p.get("protocol", "TCP") != protocol:
            continue
        value = p.get("port")
        if value is None:
            return True
        if isinstance(value, str):
            value = dict(dst.ports).get(value)
        if value == port or (p.get("endPort") and value <= port <= p["endPort"]):
            return True
    return False


def flow_allowed(policies: list[dict], src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> bool:
    """Whether Kubernetes lets src open a connection to dst:port under these NetworkPolicies."""
    def applying(ep: Endpoint, direction: str) -> list[dict]:
        if ep.ip is not None:
            return []
        out = []
        for pol in policies:
            spec = pol.get("spec", {})
            types = spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else []))
            if (pol["metadata"].get("namespace") == ep.namespace and direction in types
                    and selector_matches(spec.get("podSelector", {}), ep.label_map)):
                out.append(pol)
        return out

    def side_ok(pols: list[dict], rules_key: str, peers_key: str, other: Endpoint) -> bool:
        if not pols:
            return True
        for pol in pols:
            for r in pol["spec"].get(rules_key) or []:
                peers = r.get(peers_key)
                if (not peers or any(_peer_matches(p, pol["metadata"]["namespace"], other) for p in peers)) \
                        and _port_matches(r.get("ports"), port, protocol, dst):
                    return True
        return False

    return (side_ok(applying(src, "Egress"), "egress", "to", dst)
            and side_ok(applying(dst, "Ingress"), "ingress", "from", src))


EXTERNAL = {
    "bff": Endpoint("bff", (("app.kubernetes.io/name", "bff"),)),   # the bff Deployment replaces it
    "bff-other-pod": Endpoint("bff", (("app.kubernetes.io/name", "batch"),)),
    "ingress-controller": Endpoint("ingress-nginx", (("app.kubernetes.io/name", "ingress-nginx"),)),
    "prometheus": Endpoint("monitoring", (("app.kubernetes.io/name", "prometheus"),)),
    "other-namespace": Endpoint("other", (("app.kubernetes.io/name", "bff"),)),
    "kube-dns": Endpoint("kube-system", (("k8s-app", "kube-dns"),)),
    "internet": Endpoint(ip="157.240.22.35"),
    "internet-v6": Endpoint(ip="2a03:2880:f12f:83:face:b00c::25de"),
    "private-10": Endpoint(ip="10.0.0.5"),
    "metadata": Endpoint(ip="169.254.169.254"),
}
ALLOWED_FLOWS = [
    ("bff", "cache-gateway", 50051), ("scheduler", "cache-gateway", 50051),
    ("cache-gateway", "meta-fetcher", 50052), ("cache-gateway", "fatigue-engine", 50053),
    ("cache-gateway", "mongodb", 27017), ("cache-gateway", "redis", 6379),
    ("scheduler", "mongodb", 27017), ("scheduler", "redis", 6379),
    ("meta-fetcher", "mongodb", 27017), ("meta-fetcher", "redis", 6379),
    ("meta-fetcher", "internet", 443), ("meta-fetcher", "internet-v6", 443),
    ("mongodb", "mongodb", 27017), ("mongodb-init", "mongodb", 27017), ("mongodb-backup", "mongodb", 27017),
    ("mongodb-restore", "mongodb", 27017),
    ("ingress-controller", "bff", 4180), ("bff", "internet", 443), ("prometheus", "bff", 9464),
    ("prometheus", "cache-gateway", 9464),
]
DENIED_FLOWS = [
    ("other-namespace", "cache-gateway", 50051), ("bff-other-pod", "cache-gateway", 50051),
    ("bff", "meta-fetcher", 50052), ("bff", "fatigue-engine", 50053), ("bff", "scheduler", 50054),
    ("bff", "mongodb", 27017), ("bff", "redis", 6379), ("other-namespace", "mongodb", 27017),
    ("scheduler", "meta-fetcher", 50052), ("scheduler", "fatigue-engine", 50053),
    ("meta-fetcher", "cache-gateway", 50051), ("meta-fetcher", "fatigue-engine", 50053),
    ("fatigue-engine", "mongodb", 27017), ("fatigue-engine", "redis", 6379),
    ("redis", "mongodb", 27017), ("mongodb-backup", "redis", 6379),
    ("cache-gateway", "internet", 443), ("scheduler", "internet", 443), ("fatigue-engine", "internet", 443),
    ("mongodb", "internet", 443), ("redis", "internet", 443), ("mongodb-backup", "internet", 443),
    ("mongodb-restore", "internet", 443), ("mongodb-restore", "redis", 6379),
    ("meta-fetcher", "internet", 80), ("meta-fetcher", "private-10", 443),
    ("meta-fetcher", "metadata", 80), ("meta-fetcher", "metadata", 443),
    ("cache-gateway", "mongodb", 6379), ("cache-gateway", "meta-fetcher", 50053),
    # the BFF's own port is for oauth2-proxy on loopback only: nobody may skip the sign-in
    ("ingress-controller", "bff", 8080), ("other-namespace", "bff", 4180), ("scheduler", "bff", 8080),
    ("cache-gateway", "bff", 8080), ("bff", "internet", 80), ("bff", "private-10", 443),
    ("bff", "metadata", 80), ("ingress-controller", "cache-gateway", 50051), ("prometheus", "bff", 8080),
]


def endpoints(bundle: Bundle) -> dict[str, Endpoint]:
    eps = dict(EXTERNAL)
    for _, r in bundle.of_kind(*POD_OWNER_KINDS):
        named = tuple((k, v) for k, v in container_ports(r).items() if isinstance(k, str))
        eps[name_of(r)] = Endpoint(r["metadata"].get("namespace"), tuple(sorted(pod_labels(r).items())), ports=named)
    return eps


@rule
def network_policies(bundle: Bundle) -> Iterator[str]:
    policies = [p for _, p in bundle.of_kind("NetworkPolicy")]
    if not any(p["spec"].get("podSelector") == {} and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
               and not p["spec"].get("ingress") and not p["spec"].get("egress") for p in policies):
        yield "no default-deny NetworkPolicy (podSelector {}, Ingress and Egress, no rules)"
    for p in policies:
        if p["spec"].get("podSelector") and not workloads_selected(bundle, p["spec"]["podSelector"], NAMESPACE):
            yield f"NetworkPolicy/{name_of(p)} selects no workload"
    eps = endpoints(bundle)
    for src, dst, port in ALLOWED_FLOWS:
        if src in eps and dst in eps and not flow_allowed(policies, eps[src], eps[dst], port):
            yield f"network: {src} -> {dst}:{port} must be allowed"
    for src, dst, port in DENIED_FLOWS:
        if src in eps and dst in eps and flow_allowed(policies, eps[src], eps[dst], port):
            yield f"network: {src} -> {dst}:{port} must be denied"
    for _, r in bundle.of_kind(*POD_OWNER_KINDS):
        for protocol in ("UDP", "TCP"):
            if not flow_allowed(policies, eps[name_of(r)], eps["kube-dns"], 53, protocol):
                yield f"network: {name_of(r)} -> DNS 53/{protocol} must be allowed"
