#!/usr/bin/env python3
"""Checks k8s/ as an operator would apply it: every overlay rendered by kustomize and the
output validated, then read for what the deployment promises.

  check-k8s.py [--k8s-version 1.33.0]

For each overlay (k8s/control-plane, k8s/member-cluster, k8s/dev):
  - `kustomize build` (a kustomize of v4 or later: components and `labels`; kubectl's own
    when it is new enough), failing on any error;
  - the built-in kinds through kubernetes-validate --strict (unknown fields are errors);
  - the operators' kinds (Strimzi's KafkaTopic and KafkaUser, the Prometheus Operator's
    ServiceMonitor, PodMonitor and PrometheusRule) against the fields their CRDs define;
  - every image pinned by tag and digest, set in k8s/components/images only;
  - probes on every long-running container; topology spread on every replicated Deployment;
  - every ConfigMap a pod names is in the output; every Service selects pods;
  - the Ingress serves the gateway over TLS and never its ops endpoints.
Across overlays: the NetworkPolicies allow exactly the flows of docs/architecture.md
("Network flows"); the topics are the same in topics.txt, the KafkaTopics and compose; the
PrometheusRule holds compose's rules; the member cluster's name is set in one place.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OVERLAYS = ["control-plane", "member-cluster", "dev"]
failures = []


def fail(message):
    failures.append(message)


def kustomize_command():
    """A kustomize that understands components and `labels` (v4 or later)."""
    candidates = []
    if shutil.which("kustomize"):
        out = subprocess.run(["kustomize", "version"], capture_output=True, text=True).stdout
        candidates.append((["kustomize", "build"], out))
    if shutil.which("kubectl"):
        out = subprocess.run(["kubectl", "version", "--client"], capture_output=True, text=True).stdout
        candidates.append((["kubectl", "kustomize"], out))
    seen = []
    for command, out in candidates:
        m = re.search(r"v?(\d+)\.(\d+)\.(\d+)", out.split("Kustomize Version:")[-1])
        if m:
            seen.append(f"{command[0]}: kustomize {m.group(0)}")
            if int(m.group(1)) >= 4:
                return command, m.group(0)
    sys.exit("check-k8s: no kustomize of v4 or later (found: %s); install kubectl 1.27 or later, or kustomize 5"
             % (", ".join(seen) or "none"))


def build(command, directory):
    r = subprocess.run(command + [directory], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"check-k8s: {' '.join(command)} {os.path.relpath(directory, ROOT)} failed:\n{r.stderr}")
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def is_builtin(doc):
    group = doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else ""
    return "." not in group or group.endswith(".k8s.io")


def name_of(doc):
    return f"{doc['kind']}/{doc['metadata']['name']}"


# --- The operators' kinds: the fields their CRDs define (Strimzi v1beta2, Prometheus Operator v1).

CRD_FIELDS = {
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): {"spec": {"topicName", "partitions", "replicas", "config"}},
    ("kafka.strimzi.io/v1beta2", "KafkaUser"): {"spec": {"authentication", "authorization", "quotas", "template"}},
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {
        "spec": {"jobLabel", "targetLabels", "podTargetLabels", "endpoints", "selector", "namespaceSelector", "sampleLimit",
                 "attachMetadata"},
        "endpoints": {"port", "targetPort", "path", "scheme", "params", "interval", "scrapeTimeout", "honorLabels",
                      "honorTimestamps", "relabelings", "metricRelabelings", "tlsConfig", "bearerTokenSecret", "followRedirects"},
    },
    ("monitoring.coreos.com/v1", "PodMonitor"): {
        "spec": {"jobLabel", "podTargetLabels", "podMetricsEndpoints", "selector", "namespaceSelector", "sampleLimit",
                 "attachMetadata"},
        "endpoints": {"port", "targetPort", "path", "scheme", "params", "interval", "scrapeTimeout", "honorLabels",
                      "honorTimestamps", "relabelings", "metricRelabelings", "tlsConfig", "followRedirects"},
    },
    ("monitoring.coreos.com/v1", "PrometheusRule"): {"spec": {"groups"}},
}
KAFKA_OPS = {"Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction", "DescribeConfigs", "AlterConfigs",
             "IdempotentWrite", "All"}


def check_crd(doc, where):
    fields = CRD_FIELDS.get((doc["apiVersion"], doc["kind"]))
    if fields is None:
        fail(f"{where}: {doc['apiVersion']} {doc['kind']} is not a kind this deployment knows")
        return
    unknown = set(doc) - {"apiVersion", "kind", "metadata", "spec"}
    unknown |= set(doc.get("spec", {})) - fields["spec"]
    if unknown:
        fail(f"{where}: unknown fields {sorted(unknown)}")
    spec = doc.get("spec", {})
    kind = doc["kind"]
    if kind == "KafkaTopic":
        if not (doc["metadata"].get("labels", {}).get("strimzi.io/cluster") and isinstance(spec.get("partitions"), int)
                and spec["partitions"] > 0 and isinstance(spec.get("replicas"), int) and spec.get("topicName")):
            fail(f"{where}: a KafkaTopic needs strimzi.io/cluster, topicName, partitions and replicas")
        for k, v in (spec.get("config") or {}).items():
            if not isinstance(v, (int, str)):
                fail(f"{where}: config {k} must be a number or string")
    elif kind == "KafkaUser":
        ok = (doc["metadata"].get("labels", {}).get("strimzi.io/cluster") and spec.get("authentication") == {"type": "scram-sha-512"}
              and spec.get("authorization", {}).get("type") == "simple")
        if not ok:
            fail(f"{where}: not a SCRAM KafkaUser with simple authorization")
        for acl in spec.get("authorization", {}).get("acls", []):
            r = acl["resource"]
            if r["type"] not in ("topic", "group", "cluster", "transactionalId") or \
                    (r["type"] != "cluster" and r.get("patternType") not in ("literal", "prefix")) or not set(acl["operations"]) <= KAFKA_OPS:
                fail(f"{where}: a bad ACL {acl}")
    elif kind in ("ServiceMonitor", "PodMonitor"):
        endpoints = spec.get("endpoints" if kind == "ServiceMonitor" else "podMetricsEndpoints") or []
        if not endpoints or not spec.get("selector"):
            fail(f"{where}: needs a selector and endpoints")
        for e in endpoints:
            if set(e) - fields["endpoints"]:
                fail(f"{where}: unknown endpoint fields {sorted(set(e) - fields['endpoints'])}")
    elif kind == "PrometheusRule":
        for g in spec.get("groups", []):
            for r in g.get("rules", []):
                if set(r) - {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"} or "expr" not in r:
                    fail(f"{where}: a bad rule {r}")


# --- Pods: images, probes, spread, references.

def pod_specs(doc):
    kind = doc["kind"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return doc["spec"]["template"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]
    if kind == "Pod":
        return doc
    return None


IMAGE_PINNED = re.compile(r"^[a-z0-9][a-z0-9./_-]*(:[0-9]+)?(/[a-z0-9._-]+)*:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}$")


def check_pods(docs, overlay):
    configmaps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    serviceaccounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    pods = []
    for d in docs:
        template = pod_specs(d)
        if template is None:
            continue
        where = f"{overlay}: {name_of(d)}"
        spec = template["spec"]
        labels = template.get("metadata", {}).get("labels", {})
        pods.append((d, labels))
        if labels.get("app.kubernetes.io/part-of") != "gedge":
            fail(f"{where}: its pods lack app.kubernetes.io/part-of=gedge (the network policies select it)")
        sa = spec.get("serviceAccountName")
        if sa and sa not in serviceaccounts:
            fail(f"{where}: service account {sa} is not in the output")
        for c in spec.get("initContainers", []) + spec["containers"]:
            if not IMAGE_PINNED.match(c["image"]):
                fail(f"{where}: image {c['image']} is not pinned by tag and digest (k8s/components/images)")
            refs = [e["valueFrom"]["configMapKeyRef"]["name"] for e in c.get("env", []) if "configMapKeyRef" in e.get("valueFrom", {})]
            refs += [e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e]
            for r in refs:
                if r not in configmaps:
                    fail(f"{where}: ConfigMap {r} is not in the output")
            if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
                for probe in ("readinessProbe", "livenessProbe"):
                    if probe not in c:
                        fail(f"{where}: container {c['name']} has no {probe}")
        for v in spec.get("volumes", []):
            if "configMap" in v and v["configMap"]["name"] not in configmaps:
                fail(f"{where}: ConfigMap {v['configMap']['name']} is not in the output")
        if d["kind"] == "Deployment" and d["spec"].get("replicas", 1) > 1:
            keys = {}
            for t in spec.get("topologySpreadConstraints", []):
                if all(labels.get(k) == v for k, v in t.get("labelSelector", {}).get("matchLabels", {}).items()) and t.get("labelSelector"):
                    keys[t["topologyKey"]] = t
            for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone"):
                if key not in keys:
                    fail(f"{where}: {d['spec']['replicas']} replicas without a topology spread over {key}")
    for s in (d for d in docs if d["kind"] == "Service"):
        selector = s["spec"].get("selector", {})
        if not any(all(labels.get(k) == v for k, v in selector.items()) for _, labels in pods):
            fail(f"{overlay}: Service/{s['metadata']['name']} selects no pods")
    return pods


def check_ingress(docs, overlay):
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    for ing in (d for d in docs if d["kind"] == "Ingress"):
        where = f"{overlay}: {name_of(ing)}"
        tls_hosts = {h for t in ing["spec"].get("tls", []) for h in t.get("hosts", [])}
        for rule in ing["spec"]["rules"]:
            if rule.get("host") not in tls_hosts:
                fail(f"{where}: host {rule.get('host')} is not served over TLS")
            for p in rule["http"]["paths"]:
                backend = p["backend"]["service"]
                if backend["name"] not in services:
                    fail(f"{where}: backend {backend['name']} is not a Service in the output")
                if p["path"] in ("/", "/metrics", "/healthz", "/readyz") or p["path"].startswith(("/metrics", "/healthz", "/readyz")):
                    fail(f"{where}: path {p['path']} exposes the ops endpoints")


# --- Network flows.

def peer_text(peer):
    parts = []
    if "ipBlock" in peer:
        b = peer["ipBlock"]
        text = "address " + b["cidr"]
        if b.get("except"):
            text += " except " + ",".join(b["except"])
        return text
    if "namespaceSelector" in peer:
        parts.append("namespace " + ",".join(f"{v}" for k, v in sorted(peer["namespaceSelector"].get("matchLabels", {}).items())))
    if "podSelector" in peer:
        parts.append("pods " + ",".join(f"{k}={v}" for k, v in sorted(peer["podSelector"].get("matchLabels", {}).items())))
    return " ".join(parts)


def ports_text(rule):
    if not rule.get("ports"):
        return "all"
    return ",".join(f"{p['port']}/{p.get('protocol', 'TCP')}" for p in rule["ports"])


def policy_flows(docs):
    flows = set()
    for p in (d for d in docs if d["kind"] == "NetworkPolicy"):
        sel = p["spec"]["podSelector"].get("matchLabels", {})
        target = sel.get("app.kubernetes.io/name") or ("every pod of the suite" if sel == {"app.kubernetes.io/part-of": "gedge"} else str(sel))
        types = p["spec"].get("policyTypes", [])
        if types == ["Ingress", "Egress"] and not p["spec"].get("ingress") and not p["spec"].get("egress") and target == "every pod of the suite":
            flows.add((target, "deny", "everything", "all"))
            continue
        for direction, key, peers_key in (("in", "ingress", "from"), ("out", "egress", "to")):
            if direction == "in" and "Ingress" not in types or direction == "out" and "Egress" not in types:
                continue
            for rule in p["spec"].get(key, []) or []:
                for peer in rule.get(peers_key, [{}]):
                    flows.add((target, direction, peer_text(peer) or "anywhere", ports_text(rule)))
    return flows


def documented_flows():
    text = open(os.path.join(ROOT, "docs/architecture.md")).read()
    m = re.search(r"^## Network flows\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if not m:
        sys.exit("check-k8s: docs/architecture.md has no \"## Network flows\" section")
    flows = set()
    for line in m.group(1).splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[1] in ("in", "out", "deny"):
            flows.add(tuple(cells[:4]))
    return flows


# --- Topics.

def topics_txt():
    rows = {}
    for line in open(os.path.join(ROOT, "k8s/components/topics-job/topics.txt")):
        if line.strip() and not line.startswith("#"):
            name, partitions, retention = line.split()
            rows[name] = (int(partitions), int(retention))
    return rows


def check_topics(rendered):
    rows = topics_txt()
    kafka_topics = {d["spec"]["topicName"]: (d["spec"]["partitions"], int(d["spec"]["config"]["retention.ms"]))
                    for d in rendered["control-plane"] if d["kind"] == "KafkaTopic"}
    suite = {k: v for k, v in kafka_topics.items() if not k.startswith("gedge.agent.")}
    if suite != rows:
        fail(f"the KafkaTopics {sorted(suite.items())} differ from topics.txt {sorted(rows.items())}")
    for name, (partitions, retention) in kafka_topics.items():
        if name.startswith("gedge.agent.") and (partitions, retention) != (4, 604800000):
            fail(f"{name}: a member cluster's topic has 4 partitions and 7 days' retention")
    init = open(os.path.join(ROOT, "compose/kafka/init.sh")).read()
    compose = {}
    for m in re.finditer(r"(gedge\.[a-z.-]+):(\d+):(\d+)", init):
        compose[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    if {k: v for k, v in compose.items() if not k.startswith("gedge.agent.")} != rows:
        fail(f"compose/kafka/init.sh's topics {sorted(compose.items())} differ from topics.txt")
    for name, v in compose.items():
        if name.startswith("gedge.agent.") and v != (4, 604800000):
            fail(f"compose/kafka/init.sh: {name} has 4 partitions and 7 days' retention")


# --- The member cluster's name: one setting.

def check_member_name(command):
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copytree(os.path.join(ROOT, "k8s"), os.path.join(scratch, "k8s"))
        path = os.path.join(scratch, "k8s/member-cluster/kustomization.yaml")
        text = open(path).read()
        if text.count("cluster=edge1") != 1:
            fail("k8s/member-cluster/kustomization.yaml must set the cluster's name once (cluster=edge1)")
            return
        open(path, "w").write(text.replace("cluster=edge1", "cluster=edge9"))
        docs = build(command, os.path.join(scratch, "k8s/member-cluster"))
    member = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("gedge-member")]
    if len(member) != 1 or member[0]["data"].get("cluster") != "edge9":
        fail("the member cluster's name does not reach the ConfigMap gedge-member")
        return
    for d in docs:
        if d["kind"] in ("Deployment", "DaemonSet"):
            for c in d["spec"]["template"]["spec"]["containers"]:
                refs = [e for e in c.get("env", []) if e.get("valueFrom", {}).get("configMapKeyRef", {}).get("name") == member[0]["metadata"]["name"]]
                if not refs:
                    fail(f"member-cluster: {name_of(d)} does not take the cluster's name from gedge-member")
    if "edge1" in yaml.safe_dump_all(docs):
        fail("member-cluster: a cluster name is set somewhere other than the overlay's one setting")


def check(command, k8s_version):
    """Every check on the tree at ROOT; the failures, also printed as they are found."""
    # Images are set in one place.
    for dirpath, _, files in os.walk(os.path.join(ROOT, "k8s")):
        for f in files:
            if f == "kustomization.yaml" and "components/images" not in dirpath:
                if yaml.safe_load(open(os.path.join(dirpath, f))).get("images"):
                    fail(f"{os.path.relpath(dirpath, ROOT)}: images are set in k8s/components/images only")
    for image in yaml.safe_load(open(os.path.join(ROOT, "k8s/components/images/kustomization.yaml")))["images"]:
        if not image.get("newTag") or not re.fullmatch(r"sha256:[0-9a-f]{64}", image.get("digest", "")):
            fail(f"k8s/components/images: {image['name']} needs newTag and digest")

    rendered = {}
    with tempfile.TemporaryDirectory() as scratch:
        for overlay in OVERLAYS:
            docs = build(command, os.path.join(ROOT, "k8s", overlay))
            rendered[overlay] = docs
            builtin = [d for d in docs if is_builtin(d)]
            path = os.path.join(scratch, f"{overlay}.yaml")
            yaml.safe_dump_all(builtin, open(path, "w"))
            r = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "-k", k8s_version, "--quiet", path],
                               capture_output=True, text=True)
            if r.returncode != 0:
                fail(f"{overlay}: kubernetes-validate:\n{r.stdout}{r.stderr}")
            for d in docs:
                if not is_builtin(d):
                    check_crd(d, f"{overlay}: {name_of(d)}")
            check_pods(docs, overlay)
            check_ingress(docs, overlay)
            namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding",
                                                                                             "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")}
            if namespaces != {"gedge"}:
                fail(f"{overlay}: objects outside the gedge namespace: {namespaces}")
            print(f"check-k8s: {overlay}: {len(docs)} objects ({len(builtin)} validated against Kubernetes's schemas)")

    # Network flows: the union over the overlays is the documented table, row for row.
    rendered_flows = set().union(*(policy_flows(docs) for docs in rendered.values()))
    documented = documented_flows()
    for f in sorted(rendered_flows - documented):
        fail(f"a NetworkPolicy allows {f}, which docs/architecture.md's \"Network flows\" does not list")
    for f in sorted(documented - rendered_flows):
        fail(f"docs/architecture.md's \"Network flows\" lists {f}, which no NetworkPolicy allows")
    for overlay, docs in rendered.items():
        if ("every pod of the suite", "deny", "everything", "all") not in policy_flows(docs):
            fail(f"{overlay}: no default deny for the suite's pods")

    check_topics(rendered)
    check_member_name(command)

    # Alerts: the PrometheusRule holds compose's rules.
    rules = yaml.safe_load(open(os.path.join(ROOT, "compose/prometheus/rules.yml")))["groups"]
    prometheus_rules = [d for d in rendered["control-plane"] if d["kind"] == "PrometheusRule"]
    if len(prometheus_rules) != 1 or prometheus_rules[0]["spec"]["groups"] != rules:
        fail("the PrometheusRule differs from compose/prometheus/rules.yml; regenerate k8s/components/monitoring/prometheusrule.yaml")
    for f in failures:
        print(f"check-k8s: {f}", file=sys.stderr)
    return list(failures)


# Faults each check must catch: (file under the tree, text, replacement, what it breaks).
MUTATIONS = [
    ("k8s/components/images/kustomization.yaml", "    digest: sha256:0000000000000000000000000000000000000000000000000000000000000000\n", "", "an image without its digest"),
    ("k8s/components/control-plane/gateway.yaml", "          readinessProbe:\n            httpGet: {path: /readyz, port: http}\n            periodSeconds: 5\n", "", "a container without readiness"),
    ("k8s/components/control-plane/scheduler.yaml", "          topologyKey: kubernetes.io/hostname\n", "          topologyKey: example.com/rack\n", "replicas not spread over nodes"),
    ("k8s/components/control-plane/network-policies.yaml", "        - {protocol: TCP, port: 5432}\n", "        - {protocol: TCP, port: 5433}\n", "a flow not in the table"),
    ("k8s/base/network.yaml", "  policyTypes: [Ingress, Egress]\n", "  policyTypes: [Ingress]\n", "no default deny of egress"),
    ("k8s/components/control-plane/ingress.yaml", "      secretName: gateway-tls\n", "      secretName: gateway-tls\n  tlsMode: strict\n", "a field the API does not know"),
    ("k8s/components/control-plane/ingress.yaml", "          - {path: /console,", "          - {path: /metrics, pathType: Prefix, backend: {service: {name: gateway, port: {name: http}}}}\n          - {path: /console,", "ops endpoints exposed"),
    ("k8s/components/topics-job/topics.txt", "gedge.schedule.results 4 604800000", "gedge.schedule.results 6 604800000", "topics that disagree"),
    ("k8s/components/member-cluster/agent.yaml", "valueFrom: {configMapKeyRef: {name: gedge-member, key: cluster}}", "value: edge1", "a cluster name set twice"),
    ("k8s/components/strimzi/topics.yaml", "  partitions: 8\n", "  partitions: 8\n  partition: 8\n", "a field Strimzi does not know"),
    ("k8s/components/monitoring/prometheusrule.yaml", "      for: 2m\n", "      for: 3m\n", "alerts that differ from compose's"),
    ("k8s/components/member-cluster/agent.yaml", "            - configMapRef: {name: gedge-config}\n", "            - configMapRef: {name: gedge-settings}\n", "a ConfigMap that is not there"),
]


def self_test(command, k8s_version):
    """Each mutation, on a copy of the tree, must fail the checks; the tree itself must pass."""
    global ROOT
    original = ROOT
    missed = []
    for path, old, new, what in MUTATIONS:
        with tempfile.TemporaryDirectory() as scratch:
            for d in ("k8s", "docs", "compose"):
                shutil.copytree(os.path.join(original, d), os.path.join(scratch, d))
            target = os.path.join(scratch, path)
            text = open(target).read()
            if old not in text:
                sys.exit(f"check-k8s: self-test: {path} no longer holds {old!r}; update MUTATIONS")
            open(target, "w").write(text.replace(old, new, 1))
            ROOT = scratch
            failures.clear()
            with open(os.devnull, "w") as quiet:
                saved = sys.stdout, sys.stderr
                sys.stdout = sys.stderr = quiet
                try:
                    found = check(command, k8s_version)
                except SystemExit as e:  # kustomize refused the tree: caught as well
                    found = [str(e)]
                finally:
                    sys.stdout, sys.stderr = saved
            print(f"check-k8s: self-test: {what}: {'caught' if found else 'MISSED'}" + (f" ({found[0].splitlines()[0][:100]})" if found else ""))
            if not found:
                missed.append(what)
    ROOT = original
    failures.clear()
    return missed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k8s-version", default="1.33.0")
    parser.add_argument("--self-test", action="store_true", help="also break the tree in known ways and require each to be caught")
    args = parser.parse_args()
    command, version = kustomize_command()
    print(f"check-k8s: {' '.join(command)} ({version}), kubernetes-validate --strict (Kubernetes {args.k8s_version})")
    if check(command, args.k8s_version):
        sys.exit(1)
    if args.self_test:
        missed = self_test(command, args.k8s_version)
        if missed:
            sys.exit(f"check-k8s: self-test: not caught: {missed}")
    print("check-k8s: ok")


if __name__ == "__main__":
    main()
