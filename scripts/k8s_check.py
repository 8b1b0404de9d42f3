#!/usr/bin/env python3
"""Checks deploy/k8s (run by scripts/k8s-check):

    k8s_check.py DIR KUBERNETES_VALIDATE VERSION...

1. kustomization.yaml lists every manifest in DIR, and only those;
2. each listed file is valid against the API schemas of each VERSION (kubernetes-validate
   --strict);
3. what schemas cannot see: probes point at /health/ready (readiness) and /health/live
   (liveness, startup) on a declared port; the worker StatefulSet's APP__INSTANCE__COUNT
   equals its replicas and is at most the configured Kafka partitions; every container
   reads the ConfigMap and the Secret; the Secret carries no filled-in value.
"""

import glob
import os
import subprocess
import sys

import yaml


def fail(message):
    sys.exit(f"k8s-check: FAILED: {message}")


def documents(paths):
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    yield path, doc


def check_listing(directory):
    with open(os.path.join(directory, "kustomization.yaml"), encoding="utf-8") as f:
        listed = yaml.safe_load(f)["resources"]
    present = sorted(os.path.basename(p) for p in glob.glob(os.path.join(directory, "*.yaml")))
    present.remove("kustomization.yaml")
    if sorted(listed) != present:
        fail(f"kustomization.yaml lists {sorted(listed)}, the folder has {present}")
    return [os.path.join(directory, name) for name in listed]


def check_probes(path, name, container):
    ports = {p["name"] for p in container.get("ports", [])}
    expected = {"readinessProbe": "/health/ready", "livenessProbe": "/health/live", "startupProbe": "/health/live"}
    for probe, wanted in expected.items():
        got = container.get(probe, {}).get("httpGet")
        if not got or got.get("path") != wanted or got.get("port") not in ports:
            fail(f"{path}: {name} {probe} must be GET {wanted} on a declared port, is {got}")


def check_workloads(docs):
    config = next(d for _, d in docs if d["kind"] == "ConfigMap")["data"]
    secret = next(d for _, d in docs if d["kind"] == "Secret")
    filled = [k for k, v in secret.get("stringData", {}).items() if v]
    if filled or secret.get("data"):
        fail(f"secret.yaml must ship empty (filled: {filled or list(secret['data'])})")
    for path, doc in docs:
        if doc["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        name = doc["metadata"]["name"]
        for container in doc["spec"]["template"]["spec"]["containers"]:
            sources = {next(iter(s.values()))["name"] for s in container.get("envFrom", [])}
            if sources != {"nanum-config", "nanum-secrets"}:
                fail(f"{path}: {name} must read nanum-config and nanum-secrets, reads {sources}")
            if doc["kind"] != "Job":
                check_probes(path, name, container)
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            if doc["kind"] == "StatefulSet":
                replicas = doc["spec"]["replicas"]
                count = int(env.get("APP__INSTANCE__COUNT", "0"))
                partitions = int(config["APP__KAFKA__PARTITIONS"])
                if env.get("APP__INSTANCE__INDEX_FROM_HOSTNAME") != "true":
                    fail(f"{path}: workers must take their index from the host name")
                if count != replicas or replicas > partitions:
                    fail(f"{path}: APP__INSTANCE__COUNT {count} must equal replicas {replicas}, "
                         f"at most APP__KAFKA__PARTITIONS {partitions}")


def main():
    directory, validator, *versions = sys.argv[1:]
    files = check_listing(directory)
    for version in versions:
        result = subprocess.run([validator, "--strict", "--quiet", "-k", version, *files])
        if result.returncode != 0:
            fail(f"kubernetes-validate {version} rejected the manifests above")
    check_workloads(list(documents(files)))
    print(f"k8s-check: passed: {len(files)} manifests valid against Kubernetes {', '.join(versions)}")


if __name__ == "__main__":
    main()
