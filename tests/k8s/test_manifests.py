"""The production manifests in k8s/ (DESIGN.md §5: "validated in CI").

1. Every YAML file parses (PyYAML).
2. Every resource validates against the Kubernetes OpenAPI schemas, offline and strict
   (kubernetes-validate), for the oldest Kubernetes we support and a current one.
3. Our own rules (tests/k8s/manifest_rules.py) hold, and each of them can fail: broken
   copies of the manifests must be reported.
4. The services accept the flags and environment the manifests give them.
5. The image recipe (k8s/Dockerfile) installs the base dependencies only, without SecantusDB.
"""

from __future__ import annotations

import copy
import gzip
import os
import shutil
import subprocess
import sys
import time
import tomllib
from types import SimpleNamespace
from unittest import mock

import kubernetes_validate
import pytest
import yaml

from tests.k8s import manifest_rules as rules
from tests.k8s.manifest_rules import K8S_DIR, ROOT, Bundle, check_rules, container_env, load_bundle

#: Native gRPC probes and CronJob time zones are GA since 1.27; we support 1.29 and later.
KUBERNETES_VERSIONS = ("1.29.0", "1.34.0")

BUNDLE = load_bundle()
YAML_FILES = sorted(p.relative_to(K8S_DIR).as_posix() for p in K8S_DIR.rglob("*.yaml"))


def fresh() -> Bundle:
    return copy.deepcopy(BUNDLE)


def find(bundle: Bundle, kind: str, name: str) -> dict:
    resource = bundle.get(kind, name)
    assert resource is not None, f"{kind}/{name} missing"
    return resource


def main_container(bundle: Bundle, kind: str, name: str) -> dict:
    return find(bundle, kind, name)["spec"]["template"]["spec"]["containers"][0]


# --- 1. YAML ----------------------------------------------------------------------------------

def test_the_manifests_are_all_there():
    kinds = {r["kind"] for _, r in BUNDLE.resources}
    assert {"Namespace", "ConfigMap", "Secret", "StatefulSet", "Deployment", "Service", "HorizontalPodAutoscaler",
            "PodDisruptionBudget", "NetworkPolicy", "CronJob", "Job", "PersistentVolumeClaim"} <= kinds
    assert len(YAML_FILES) >= 10


@pytest.mark.parametrize("rel", YAML_FILES)
def test_yaml_parses(rel):
    docs = [d for d in yaml.safe_load_all((K8S_DIR / rel).read_text()) if d is not None]
    assert docs, f"{rel} holds no document"
    for doc in docs:
        assert isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind"), f"{rel}: not a resource"
        if doc["kind"] != "Kustomization":
            assert doc.get("metadata", {}).get("name"), f"{rel}: a {doc['kind']} without a name"


def test_no_duplicate_resources():
    keys = [(r["kind"], r["metadata"].get("namespace"), r["metadata"]["name"]) for _, r in BUNDLE.resources]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)


# --- 2. Kubernetes schemas --------------------------------------------------------------------

#: prometheus-operator resources (k8s/monitoring/) have no Kubernetes OpenAPI schema: tests/monitoring checks them.
CORE_RESOURCES = [(p, r) for p, r in BUNDLE.resources if not r["apiVersion"].startswith("monitoring.coreos.com/")]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("index", range(len(CORE_RESOURCES)),
                         ids=[f"{p}:{r['kind']}/{r['metadata']['name']}" for p, r in CORE_RESOURCES])
def test_resource_matches_the_kubernetes_schema(index, version):
    _, resource = CORE_RESOURCES[index]
    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{'.'.join(map(str, exc.path))}: {exc.message}")


def test_schema_validation_rejects_a_broken_resource():
    deployment = copy.deepcopy(BUNDLE.get("Deployment", "cache-gateway"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["grpc"]["prot"] = 50051
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)
    deployment = copy.deepcopy(BUNDLE.get("Deployment", "cache-gateway"))
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "50051"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


# --- 3. our rules -----------------------------------------------------------------------------

def test_our_rules_hold():
    assert check_rules(BUNDLE) == []


def _drop_probe(b):
    del main_container(b, "Deployment", "cache-gateway")["livenessProbe"]


def _latest_tag(b):
    main_container(b, "Deployment", "scheduler")["image"] = "adfatigue:latest"


def _untagged_mongo(b):
    main_container(b, "StatefulSet", "mongodb")["image"] = "mongo"


def _port_mismatch(b):
    main_container(b, "Deployment", "meta-fetcher")["ports"][0]["containerPort"] = 50099


def _wrong_port_flag(b):
    main_container(b, "Deployment", "fatigue-engine")["command"][6] = "60053"


def _selector_typo(b):
    find(b, "Service", "meta-fetcher")["spec"]["selector"] = {"app.kubernetes.io/name": "meta-fetch"}


def _hpa_target_missing(b):
    find(b, "HorizontalPodAutoscaler", "cache-gateway")["spec"]["scaleTargetRef"]["name"] = "gateway"


def _hpa_min_one(b):
    find(b, "HorizontalPodAutoscaler", "cache-gateway")["spec"]["minReplicas"] = 1


def _mentions_secantus(b):
    b.texts["configmap.yaml"] += "# MONGODB_URI: embedded SecantusDB\n"


def _mentions_sandbox(b):
    main_container(b, "Deployment", "meta-fetcher")["command"][2] = "services.meta_sandbox"


def _unlisted_file(b):
    b.kustomizations[""]["resources"].remove("redis.yaml")


def _listed_missing_file(b):
    b.kustomizations[""]["resources"].append("ingress.yaml")


def _root_user(b):
    spec = find(b, "Deployment", "cache-gateway")["spec"]["template"]["spec"]
    del spec["securityContext"]["runAsNonRoot"]
    del spec["containers"][0]["securityContext"]["runAsNonRoot"]


def _writable_root(b):
    main_container(b, "Deployment", "redis")["securityContext"]["readOnlyRootFilesystem"] = False


def _caps_kept(b):
    main_container(b, "Deployment", "scheduler")["securityContext"]["capabilities"] = {"drop": ["NET_RAW"]}


def _no_limits(b):
    del main_container(b, "Deployment", "fatigue-engine")["resources"]["limits"]


def _no_default_deny(b):
    b.resources = [(p, r) for p, r in b.resources if r["metadata"]["name"] != "default-deny-all"]


def _gateway_to_internet(b):
    find(b, "NetworkPolicy", "cache-gateway")["spec"]["egress"].append(
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 443}]})


def _open_mongodb(b):
    find(b, "NetworkPolicy", "mongodb")["spec"]["ingress"].append({"ports": [{"protocol": "TCP", "port": 27017}]})


def _no_dns(b):
    b.resources = [(p, r) for p, r in b.resources if r["metadata"]["name"] != "allow-dns-egress"]


def _real_secret(b):
    find(b, "Secret", "adfatigue-secrets")["stringData"]["META_APP_SECRET"] = "0123456789abcdef0123456789abcdef"


def _secret_in_main_kustomization(b):
    b.resources.append(("secrets.yaml", {"apiVersion": "v1", "kind": "Secret",
                                         "metadata": {"name": "extra", "namespace": "adfatigue"},
                                         "stringData": {"TOKEN": "REPLACE_ME"}}))
    b.texts["secrets.yaml"] = ""
    b.kustomizations[""]["resources"].append("secrets.yaml")


def _no_replica_set(b):
    find(b, "ConfigMap", "adfatigue-config")["data"]["MONGODB_OPTIONS"] = "authSource=admin"


def _undefined_variable(b):
    main_container(b, "Deployment", "scheduler")["env"][2]["value"] = "mongodb://$(MONGODB_USER)@$(MONGODB_HOSTS)/"


def _missing_secret_key(b):
    main_container(b, "Deployment", "cache-gateway")["env"][3]["valueFrom"]["secretKeyRef"]["key"] = "JWT_KEY"


def _dev_jwt_secret(b):
    main_container(b, "Deployment", "cache-gateway")["env"].append({"name": "JWT_HS256_SECRET", "value": "dev"})


def _meta_token_in_gateway(b):
    main_container(b, "Deployment", "cache-gateway")["env"].append(
        {"name": "META_ACCESS_TOKEN", "valueFrom": {"secretKeyRef": {"name": "adfatigue-secrets",
                                                                     "key": "META_ACCESS_TOKEN"}}})


def _scheduler_without_service_token(b):
    env = main_container(b, "Deployment", "scheduler")["env"]
    env[:] = [e for e in env if e["name"] != "ADFATIGUE_SERVICE_TOKEN"]


def _one_scheduler(b):
    find(b, "Deployment", "scheduler")["spec"]["replicas"] = 1


def _two_mongo_members(b):
    find(b, "StatefulSet", "mongodb")["spec"]["replicas"] = 2


def _mongo_pdb_two(b):
    find(b, "PodDisruptionBudget", "mongodb")["spec"]["maxUnavailable"] = 2


def _gateway_replicas_pinned(b):
    find(b, "Deployment", "cache-gateway")["spec"]["replicas"] = 2


def _wrong_image_version(b):
    main_container(b, "Deployment", "cache-gateway")["image"] = "adfatigue:0.0.9"


def _wrong_fetcher_address(b):
    find(b, "ConfigMap", "adfatigue-config")["data"]["ADFATIGUE_FETCHER_ADDR"] = "meta-fetcher:50051"


def _hourly_backup_without_retention(b):
    job = find(b, "CronJob", "mongodb-backup")
    job["spec"]["schedule"] = "0 * * * *"
    job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "7"


def _hourly_backup_without_tokens(b):
    job = find(b, "CronJob", "mongodb-backup-hourly")
    env = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    next(e for e in env if e["name"] == "COLLECTIONS")["value"] = "audit"


def _probe_on_wrong_port(b):
    main_container(b, "Deployment", "scheduler")["readinessProbe"] = {"grpc": {"port": 50051}}


def _tls_off(b):
    del find(b, "ConfigMap", "adfatigue-config")["data"]["GRPC_TLS_CERT"]


def _headless_service_gone(b):
    find(b, "Service", "mongodb")["spec"]["clusterIP"] = "10.0.0.10"


def _restore_armed(b):
    env = find(b, "Job", "mongodb-restore")["spec"]["template"]["spec"]["containers"][0]["env"]
    env[0]["value"] = "adfatigue-20260101T023000Z.archive.gz"


def _bff_trusts_the_pod_network(b):
    find(b, "ConfigMap", "bff-config")["data"]["BFF_PROXY_TRUSTED_IPS"] = "10.0.0.0/8"


def _bff_port_open(b):
    find(b, "NetworkPolicy", "bff")["spec"]["ingress"][0]["ports"].append({"protocol": "TCP", "port": 8080})


def _bff_grpc_probe(b):
    main_container(b, "Deployment", "bff")["readinessProbe"] = {"grpc": {"port": 50090}}


def _one_bff(b):
    find(b, "Deployment", "bff")["spec"]["replicas"] = 1


def _bff_without_proxy(b):
    spec = find(b, "Deployment", "bff")["spec"]["template"]["spec"]
    spec["containers"] = [c for c in spec["containers"] if c["name"] != "oauth2-proxy"]


def _bff_without_signing_key(b):
    env = main_container(b, "Deployment", "bff")["env"]
    env[:] = [e for e in env if e["name"] != "BFF_GATEWAY_SIGNING_KEY"]


def _bff_not_scraped(b):
    find(b, "NetworkPolicy", "allow-prometheus-scrape")["spec"]["podSelector"]["matchExpressions"][0]["values"].remove(
        "bff")


BROKEN = {
    "BFF trusts a pod network": (_bff_trusts_the_pod_network, "BFF_PROXY_TRUSTED_IPS must be '127.0.0.1,::1'"),
    "BFF reachable past oauth2-proxy": (_bff_port_open, "ingress-controller -> bff:8080 must be denied"),
    "BFF probed over gRPC": (_bff_grpc_probe, "readinessProbe must be an HTTP GET of /healthz on port 8080"),
    "one BFF": (_one_bff, "Deployment/bff needs replicas >= 2"),
    "BFF without oauth2-proxy": (_bff_without_proxy, "needs an oauth2-proxy sidecar"),
    "BFF cannot sign gateway tokens": (_bff_without_signing_key, "services.bff needs BFF_GATEWAY_SIGNING_KEY"),
    "BFF metrics not scraped": (_bff_not_scraped, "prometheus -> bff:9464 must be allowed"),
    "missing liveness probe": (_drop_probe, "no livenessProbe"),
    ":latest tag": (_latest_tag, "latest tag"),
    "image without tag": (_untagged_mongo, "has no tag"),
    "containerPort differs from --port": (_port_mismatch, "--port 50052 is not one of its containerPorts"),
    "port flag differs from the service's port": (_wrong_port_flag, "command must start with"),
    "Service selector matches nothing": (_selector_typo, "selects no pods"),
    "HPA targets a missing Deployment": (_hpa_target_missing, "which does not exist"),
    "HPA allows one gateway": (_hpa_min_one, "minReplicas >= 2"),
    "mentions SecantusDB": (_mentions_secantus, "mentions 'secantus'"),
    "runs the sandbox": (_mentions_sandbox, "meta_sandbox"),
    "file not in kustomization": (_unlisted_file, "redis.yaml is not listed"),
    "kustomization lists a missing file": (_listed_missing_file, "ingress.yaml, which does not exist"),
    "may run as root": (_root_user, "runAsNonRoot must be true"),
    "writable root filesystem": (_writable_root, "readOnlyRootFilesystem must be true"),
    "capabilities kept": (_caps_kept, "capabilities.drop must contain ALL"),
    "no resource limits": (_no_limits, "no resources.limits.cpu"),
    "no default deny": (_no_default_deny, "no default-deny NetworkPolicy"),
    "gateway may reach the internet": (_gateway_to_internet, "cache-gateway -> internet:443 must be denied"),
    "mongodb open to everyone": (_open_mongodb, "other-namespace -> mongodb:27017 must be denied"),
    "no DNS egress": (_no_dns, "DNS 53/UDP must be allowed"),
    "real secret value": (_real_secret, "META_APP_SECRET must be a REPLACE_ME placeholder"),
    "Secret applied with the platform": (_secret_in_main_kustomization, "Secrets belong in k8s/secret-templates/"),
    "MONGODB_URI without replicaSet": (_no_replica_set, "MONGODB_URI has no replicaSet="),
    "undefined $(VAR)": (_undefined_variable, "uses undefined $(MONGODB_USER)"),
    "missing Secret key": (_missing_secret_key, "refers to missing Secret/adfatigue-secrets key JWT_KEY"),
    "dev JWT secret": (_dev_jwt_secret, "sets JWT_HS256_SECRET"),
    "Meta token outside meta_fetcher": (_meta_token_in_gateway, "META_ACCESS_TOKEN is for meta_fetcher only"),
    "scheduler cannot authenticate": (_scheduler_without_service_token, "needs ADFATIGUE_SERVICE_TOKEN"),
    "one scheduler": (_one_scheduler, "Deployment/scheduler must have replicas: 2"),
    "two MongoDB members": (_two_mongo_members, "StatefulSet/mongodb must have replicas: 3"),
    "MongoDB PDB too loose": (_mongo_pdb_two, "no PDB with maxUnavailable: 1 for mongodb"),
    "gateway replicas fight the HPA": (_gateway_replicas_pinned, "sets spec.replicas"),
    "image version is not the project's": (_wrong_image_version, "image must be adfatigue:0.1.0"),
    "address of a wrong port": (_wrong_fetcher_address, "ADFATIGUE_FETCHER_ADDR='meta-fetcher:50051' is no Service port"),
    "backup not daily, wrong retention": (_hourly_backup_without_retention, "must run once a day"),
    "hourly backup without tokens": (_hourly_backup_without_tokens, "tokens and audit"),
    "gRPC probe on another port": (_probe_on_wrong_port, "readinessProbe must be a native gRPC probe on port 50090"),
    "gRPC without TLS": (_tls_off, "services.meta_fetcher needs GRPC_TLS_CERT"),
    "StatefulSet without headless Service": (_headless_service_gone, "serviceName must name a headless Service"),
    "restore armed in the repository": (_restore_armed, "ARCHIVE must stay a REPLACE_ME placeholder"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_rules_catch_a_broken_manifest(case):
    breaker, expected = BROKEN[case]
    bundle = fresh()
    breaker(bundle)
    violations = check_rules(bundle)
    assert any(expected in v for v in violations), f"expected {expected!r} among {violations}"


def test_breaking_a_copy_leaves_the_real_manifests_alone():
    bundle = fresh()
    for breaker, _ in BROKEN.values():
        breaker(bundle)
    assert check_rules(BUNDLE) == []


def test_rule_checker_reads_a_broken_file_from_disk(tmp_path):
    """End to end through load_bundle: a deliberately broken manifest file on disk fails the rules."""
    shutil.copytree(K8S_DIR, tmp_path / "k8s")
    path = tmp_path / "k8s" / "fatigue-engine.yaml"
    path.write_text(path.read_text().replace("readinessProbe:", "notAProbe:").replace(
        "image: adfatigue:0.1.0", "image: adfatigue:latest"))
    violations = check_rules(load_bundle(tmp_path / "k8s"))
    assert any("container fatigue-engine: no readinessProbe" in v for v in violations), violations
    assert any("uses the latest tag" in v for v in violations), violations


def test_network_policy_evaluation_follows_kubernetes_semantics():
    pod = rules.Endpoint("adfatigue", (("app", "a"),))
    other = rules.Endpoint("adfatigue", (("app", "b"),))
    assert rules.flow_allowed([], pod, other, 80)  # no policy: open
    deny = {"metadata": {"namespace": "adfatigue"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    assert not rules.flow_allowed([deny], pod, other, 80)
    allow = {"metadata": {"namespace": "adfatigue"},
             "spec": {"podSelector": {"matchLabels": {"app": "b"}}, "policyTypes": ["Ingress"],
                      "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "a"}}}],
                                   "ports": [{"port": 80}]}]}}
    assert rules.flow_allowed([deny, allow], pod, other, 80)
    assert not rules.flow_allowed([deny, allow], pod, other, 81)
    assert not rules.flow_allowed([deny, allow], rules.Endpoint("elsewhere", (("app", "a"),)), other, 80)


# --- 4. the services accept what the manifests pass -------------------------------------------

def _app_container(module: str) -> dict:
    deployment, _ = rules.SERVICES[module]
    return main_container(BUNDLE, "Deployment", deployment)


def _argv(container: dict, env: dict[str, str]) -> list[str]:
    """The flags after ``python -m services.X``, with $(VAR) expanded as the kubelet does."""
    return [rules.expand(str(a), env) for a in container["command"][3:] + container.get("args", [])]


def test_cache_gateway_accepts_its_flags_and_environment():
    from services.cache_gateway.server import parse_args

    container = _app_container("cache_gateway")
    env = container_env(BUNDLE, container)
    with mock.patch.dict(os.environ, env, clear=True):
        args = parse_args(_argv(container, env))
    settings = args.settings
    assert (args.host, settings.port) == ("0.0.0.0", 50051)
    assert settings.fetcher_addr == "meta-fetcher:50052" and settings.engine_addr == "fatigue-engine:50053"
    assert "replicaSet=rs0" in settings.mongodb_uri and settings.mongodb_uri.startswith("mongodb://adfatigue:")
    assert settings.redis_url.startswith("redis://redis.")
    assert settings.l1_max_bytes == 50 * 1024 * 1024


def test_meta_fetcher_accepts_its_flags_and_environment():
    from services.meta_fetcher.server import _parse_args

    container = _app_container("meta_fetcher")
    env = container_env(BUNDLE, container)
    args = _parse_args(_argv(container, env), env)
    settings = args.settings
    assert (args.host, args.port) == ("0.0.0.0", 50052)
    assert settings.graph_url == "https://graph.facebook.com"
    assert settings.api_version == env["META_API_VERSION"]
    assert settings.vault_enabled and settings.redis_url and settings.budget_calls == 200
    assert settings.access_token != "sandbox-dev-token"


def test_scheduler_accepts_its_flags_and_environment():
    from services.scheduler.server import parse_args

    container = _app_container("scheduler")
    env = container_env(BUNDLE, container)
    with mock.patch.dict(os.environ, env, clear=True):
        args = parse_args(_argv(container, env))
    assert (args.host, args.settings.port) == ("0.0.0.0", 50054)
    assert args.settings.gateway_addr == "cache-gateway:50051"
    assert "replicaSet=rs0" in args.settings.mongodb_uri


def test_fatigue_engine_accepts_its_flags():
    import services.fatigue_engine.__main__ as engine_main

    container = _app_container("fatigue_engine")
    started = []
    with mock.patch.object(engine_main, "serve", lambda host, port: (host, port)), \
            mock.patch.object(engine_main, "asyncio", SimpleNamespace(run=started.append)), \
            mock.patch.object(engine_main, "configure_logging", lambda name, settings=None: None):
        engine_main.main(_argv(container, {}))
    assert started == [("0.0.0.0", 50053)]


def test_bff_accepts_its_flags_and_environment():
    import argparse

    from services.bff.settings import BffSettings
    from services.common.settings import parse_service_args

    container = main_container(BUNDLE, "Deployment", "bff")
    env = container_env(BUNDLE, container)
    parser = argparse.ArgumentParser()
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    with mock.patch.dict(os.environ, env, clear=True):
        settings = parse_service_args(parser, BffSettings, _argv(container, env)).settings
    assert (settings.host, settings.port, settings.metrics_port) == ("0.0.0.0", 8080, 9464)
    assert settings.gateway_addr == "cache-gateway:50051" and settings.grpc_tls_ca.endswith("ca.crt")
    assert settings.sign_in == "proxy-header" and settings.trusted_proxies == ["127.0.0.1", "::1"]
    assert settings.secure_cookies and not settings.jwt_hs256_secret
    assert settings.session_secret and settings.gateway_signing_key and settings.gateway_signing_kid
    proxy = find(BUNDLE, "Deployment", "bff")["spec"]["template"]["spec"]["containers"][1]
    assert "--upstream=http://127.0.0.1:8080/" in proxy["args"]
    assert f"--redirect-url={settings.public_url}/oauth2/callback" in proxy["args"]
    # the page is where the image's web stage puts it
    assert str(settings.web_dist) == "/opt/adfatigue/web"
    assert "COPY --from=web /web/dist /opt/adfatigue/web" in (K8S_DIR / "Dockerfile").read_text()


def test_every_env_var_the_manifests_set_is_read_by_a_service():
    """A typo in a setting's name would be silently ignored: every name must occur in services/."""
    source = "\n".join(p.read_text() for p in (ROOT / "services").rglob("*.py") if "meta_sandbox" not in p.parts)
    composed = {"MONGODB_USERNAME", "MONGODB_PASSWORD", "MONGODB_HOSTS", "MONGODB_OPTIONS", "MONGODB_REPLICA_SET",
                "OPENBLAS_NUM_THREADS"}  # inputs of $(VAR) composition, and numpy's own
    config = rules.data_of(BUNDLE.get("ConfigMap", "adfatigue-config"))
    names = set(config) | set(rules.data_of(BUNDLE.get("ConfigMap", "bff-config")))
    for module in rules.SERVICES:
        names |= {e["name"] for e in _app_container(module).get("env", [])}
    names |= {e["name"] for e in main_container(BUNDLE, "Deployment", "bff").get("env", [])}
    unknown = sorted(n for n in names - composed if f'"{n}"' not in source)
    assert not unknown, f"no service reads {unknown}"


# --- 5. the image -----------------------------------------------------------------------------

def test_production_dependencies_exclude_secantusdb():
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    assert not [d for d in project["dependencies"] if "secantus" in d.lower()]
    assert any("secantus" in d.lower() for d in project["optional-dependencies"]["embedded"])


def test_dockerfile_installs_the_project_without_extras():
    text = (K8S_DIR / "Dockerfile").read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    body = "\n".join(instructions)
    assert "pip install .\n" in body + "\n" or "pip install . " in body
    assert "pip install .[" not in body and "pip install '.[" not in body and "embedded" not in body
    assert "secantusdb" in body  # the build-time guard
    assert "SecantusDB" in text and "GPL-2.0" in text  # and the comment saying why
    assert any(line.startswith("USER 10001") for line in instructions)
    for line in instructions:
        if line.startswith(("FROM", "ARG PYTHON_IMAGE")):
            assert ":latest" not in line
    assert "docker build -f k8s/Dockerfile -t adfatigue:0.1.0 ." in text
    ignore = (K8S_DIR / "Dockerfile.dockerignore").read_text()
    assert "services/meta_sandbox/" in ignore


def test_workloads_run_as_the_image_user():
    for deployment in [d for d, _ in rules.SERVICES.values()] + [d for d, *_ in rules.HTTP_SERVICES.values()]:
        spec = find(BUNDLE, "Deployment", deployment)["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsUser"] == 10001


# --- scripts shipped in ConfigMaps ------------------------------------------------------------

def _script(configmap: str, key: str) -> str:
    return rules.data_of(BUNDLE.get("ConfigMap", configmap))[key]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_replica_set_init_script_is_valid_javascript(tmp_path):
    path = tmp_path / "init-replica-set.js"
    path.write_text(_script("mongodb-init-script", "init-replica-set.js"))
    result = subprocess.run(["node", "--check", str(path)], check=False, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_shell_snippets_are_valid_sh():
    snippets = [_script("mongodb-backup-script", "backup.sh"), _script("mongodb-restore-script", "restore.sh")]
    for _, r in BUNDLE.of_kind(*rules.POD_OWNER_KINDS):
        for c in rules.containers(r):
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                command = ((c.get(probe) or {}).get("exec") or {}).get("command") or []
                if command[:2] == ["sh", "-c"]:
                    snippets.append(command[2])
            if (c.get("command") or [])[:2] == ["sh", "-c"]:
                snippets.append(c["command"][2])
    assert len(snippets) >= 3
    for snippet in snippets:
        result = subprocess.run(["sh", "-n", "-c", snippet], check=False, capture_output=True, text=True, timeout=10)
        assert result.returncode == 0, (snippet, result.stderr)


def _backup_sandbox(tmp_path):
    """(bin dir with a stand-in mongodump that writes its arguments into the archive, backup dir, backup.sh)."""
    bindir, backups = tmp_path / "bin", tmp_path / "backup"
    bindir.mkdir()
    backups.mkdir()
    fake = bindir / "mongodump"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do case "$a" in --archive=*) f="${a#--archive=}";; esac; done\n'
                    'printf "%s\\n" "$@" | gzip > "$f"\n')
    fake.chmod(0o755)
    script = tmp_path / "backup.sh"
    script.write_text(_script("mongodb-backup-script", "backup.sh"))
    return bindir, backups, script


def test_backup_script_writes_a_checked_archive_and_keeps_30_days(tmp_path):
    """backup.sh with a stand-in mongodump: the new archive is in place, older ones are pruned."""
    bindir, backups, script = _backup_sandbox(tmp_path)
    now = time.time()
    ages = {"adfatigue-old.archive.gz": 31, "adfatigue-recent.archive.gz": 29,
            "adfatigue-crashed.archive.gz.partial": 2, "unrelated.txt": 90}
    for name, days in ages.items():
        (backups / name).write_bytes(gzip.compress(b"x"))
        os.utime(backups / name, (now - days * 86400, now - days * 86400))
    env = {"PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}", "BACKUP_DIR": str(backups),
           "RETENTION_DAYS": "30", "MONGODB_URI": "mongodb://backup:pw@mongodb-0:27017/?replicaSet=rs0"}
    result = subprocess.run(["sh", str(script)], env=env, check=False, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    left = sorted(p.name for p in backups.iterdir())
    new = [n for n in left if n.startswith("adfatigue-2") and n.endswith(".archive.gz")]
    assert len(new) == 1 and "adfatigue-recent.archive.gz" in left and "unrelated.txt" in left
    assert "adfatigue-old.archive.gz" not in left and not any(n.endswith(".partial") for n in left)
    dumped = gzip.decompress((backups / new[0]).read_bytes()).decode().split()
    assert {"--oplog", "--gzip"} <= set(dumped) and any(a.startswith("--uri=mongodb://") for a in dumped)


def test_hourly_backup_writes_one_archive_per_collection(tmp_path):
    """backup.sh with COLLECTIONS (the hourly job): tokens and audit each get an archive of their own."""
    bindir, backups, script = _backup_sandbox(tmp_path)
    job = BUNDLE.get("CronJob", "mongodb-backup-hourly")
    env = {e["name"]: e["value"] for e in job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
           if "value" in e}
    run_env = {"PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}", "BACKUP_DIR": str(backups),
               "RETENTION_DAYS": env["RETENTION_DAYS"], "COLLECTIONS": env["COLLECTIONS"],
               "MONGODB_DB": env["MONGODB_DB"], "MONGODB_URI": "mongodb://backup:pw@mongodb-0:27017/?replicaSet=rs0"}
    result = subprocess.run(["sh", str(script)], env=run_env, check=False, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    made = sorted(p.name for p in backups.iterdir())
    assert [n.split("-")[1] for n in made] == ["audit", "tokens"]
    for name in made:
        argv = gzip.decompress((backups / name).read_bytes()).decode().split()
        assert "--oplog" not in argv and "--db=adfatigue" in argv and f"--collection={name.split('-')[1]}" in argv


def _restore_sandbox(tmp_path):
    """(bin dir with a stand-in mongorestore that appends each call's arguments as one line to ``calls``,
    backup dir, restore.sh, calls)."""
    bindir, backups = tmp_path / "bin", tmp_path / "backup"
    bindir.mkdir()
    backups.mkdir()
    calls = tmp_path / "calls"
    fake = bindir / "mongorestore"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    script = tmp_path / "restore.sh"
    script.write_text(_script("mongodb-restore-script", "restore.sh"))
    return bindir, backups, script, calls


def test_restore_script_restores_the_daily_archive_then_the_hourly_ones(tmp_path):
    bindir, backups, script, calls = _restore_sandbox(tmp_path)
    names = ["adfatigue-20260101T023000Z.archive.gz", "adfatigue-tokens-20260101T091500Z.archive.gz",
             "adfatigue-audit-20260101T091500Z.archive.gz"]
    for name in names:
        (backups / name).write_bytes(gzip.compress(b"archive"))
    base = {"PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}", "BACKUP_DIR": str(backups),
            "MONGODB_URI": "mongodb://root:pw@mongodb-0:27017/?replicaSet=rs0&authSource=admin"}
    missing = subprocess.run(["sh", str(script)], env={**base, "ARCHIVE": " ".join([*names, "adfatigue-x.archive.gz"])},
                             check=False, capture_output=True, text=True, timeout=30)
    assert missing.returncode != 0 and not calls.exists()  # every file is checked before anything runs
    done = subprocess.run(["sh", str(script)], env={**base, "ARCHIVE": " ".join(names)}, check=False,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    lines = calls.read_text().splitlines()
    assert len(lines) == 3 and names[0] in lines[0] and "--oplogReplay" in lines[0]
    assert all("--oplogReplay" not in line and "--drop" in line for line in lines[1:])


def test_restore_script_refuses_a_placeholder_and_restores_the_named_archive(tmp_path):
    """restore.sh with a stand-in mongorestore: nothing happens until ARCHIVE names a real file."""
    bindir, backups, script, calls = _restore_sandbox(tmp_path)
    (backups / "adfatigue-20260101T023000Z.archive.gz").write_bytes(gzip.compress(b"archive"))
    job = BUNDLE.get("Job", "mongodb-restore")
    placeholder = next(e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
                       if e["name"] == "ARCHIVE")
    base = {"PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}", "BACKUP_DIR": str(backups),
            "MONGODB_URI": "mongodb://root:pw@mongodb-0:27017/?replicaSet=rs0&authSource=admin"}
    refused = subprocess.run(["sh", str(script)], env={**base, "ARCHIVE": placeholder}, check=False,
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and not calls.exists()
    done = subprocess.run(["sh", str(script)], env={**base, "ARCHIVE": "adfatigue-20260101T023000Z.archive.gz"},
                          check=False, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    argv = calls.read_text().split()
    assert f"--archive={backups}/adfatigue-20260101T023000Z.archive.gz" in argv
    assert {"--gzip", "--oplogReplay", "--drop"} <= set(argv)


# --- kustomize (when kubectl is installed) ----------------------------------------------------

@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("folder", sorted(BUNDLE.kustomizations))
def test_kustomize_builds_what_the_files_hold(folder):
    result = subprocess.run(["kubectl", "kustomize", str(K8S_DIR / folder)], check=False, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    built = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(result.stdout) if d}
    expected = {(r["kind"], r["metadata"]["name"]) for p, r in BUNDLE.resources if rules.folder_of(p) == folder}
    assert built == expected
    if folder == "":
        assert not any(kind == "Secret" for kind, _ in built)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
