#!/usr/bin/env bash
# Checks the deployment files without a Docker engine or a cluster:
#   yamllint on compose/, k8s/ and config/;
#   docker compose's own validation (Debian's docker-compose, `config`);
#   the rendered compose configuration; Prometheus's configuration, rules and rule tests (promtool);
#   every k8s/ overlay built by kustomize and validated against the schemas of a current
#   Kubernetes (kubernetes-validate, strict: unknown fields are errors), with the checks of
#   scripts/check-k8s.py (which also breaks a copy of the tree and requires each fault caught).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/scripts/args.sh"
script_help "$@"
[ $# -eq 0 ] || refuse "scripts/check-deploy.sh (no arguments)" "$1"
cd "$root"
k8s_version="${GEDGE_K8S_VERSION:-1.33.0}"

echo "check-deploy: yamllint"
python3 -m yamllint -s compose k8s config .yamllint

echo "check-deploy: docker-compose config"
docker-compose -f compose/docker-compose.yml config -q

echo "check-deploy: compose secrets (generated into a scratch folder)"
secrets="$(mktemp -d)"
trap 'rm -rf "$secrets"' EXIT
bash scripts/compose-secrets.sh "$secrets" >/dev/null
# Every secret file compose names is one the generator writes.
python3 - "$secrets" <<'PY'
import os, sys, yaml
doc = yaml.safe_load(open("compose/docker-compose.yml"))
missing = [n for n, s in doc["secrets"].items() if not os.path.exists(os.path.join(sys.argv[1], os.path.basename(s["file"])))]
if missing:
    sys.exit(f"check-deploy: scripts/compose-secrets.sh does not make {missing}")
users = {n[len("kafka_"):-len("_password")] for n in doc["secrets"] if n.startswith("kafka_") and n.endswith("_password")}
for svc in doc["services"].values():
    u = (svc.get("environment") or {}).get("GEDGE_KAFKA_RDKAFKA_SASL_USERNAME")
    if u and u not in users:
        sys.exit(f"check-deploy: Kafka principal {u} has no password secret")
PY
# The rendered configuration: Kafka's data where its volume is; every long-running service
# restarts; no RabbitMQ guest; every password from a secret file.
docker-compose -f compose/docker-compose.yml config > "$secrets/rendered.yml"
python3 - "$secrets/rendered.yml" <<'PY'
import re, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
props = open("compose/kafka/server.properties").read()
log_dirs = re.search(r"(?m)^log\.dirs=(.+)$", props).group(1).strip()
kafka = doc["services"]["kafka"]
mounts = {}
for v in kafka.get("volumes", []):
    if isinstance(v, str):  # the short form, source:target[:mode]
        source, target = v.split(":")[:2]
        mounts[target] = source
    else:
        mounts[v["target"]] = v.get("source")
if mounts.get(log_dirs) != "kafka-data":
    sys.exit(f"check-deploy: Kafka writes {log_dirs}, which is not the kafka-data volume ({mounts})")
if "KAFKA_LOG_DIRS" in (kafka.get("environment") or {}) and kafka["environment"]["KAFKA_LOG_DIRS"] != log_dirs:
    sys.exit("check-deploy: KAFKA_LOG_DIRS disagrees with log.dirs")
for name, svc in doc["services"].items():
    if name == "kafka-topics":
        continue  # a one-shot job
    if svc.get("restart") not in ("unless-stopped", "always", "on-failure"):
        sys.exit(f"check-deploy: {name} has no restart policy")
text = open(sys.argv[1]).read()
if "guest:guest" in text:
    sys.exit("check-deploy: RabbitMQ's guest credentials in the rendered configuration")
for name, svc in doc["services"].items():
    for k, v in (svc.get("environment") or {}).items():
        if re.search(r"PASSWORD$|PASS$|SECRET$|TOKEN$", k) and not k.endswith("_FILE"):
            sys.exit(f"check-deploy: {name} has {k} in its environment, not from a secret file")
PY
# The broker's certificate chains to the CA and names the host clients connect to.
sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' "$secrets/kafka_broker.pem" | awk '/BEGIN CERT/{n++} n==1' > "$secrets/broker.crt"
openssl verify -CAfile "$secrets/kafka_ca.crt" "$secrets/broker.crt" >/dev/null
openssl x509 -in "$secrets/broker.crt" -noout -ext subjectAltName | grep -q "DNS:kafka"
grep -q "BEGIN PRIVATE KEY" "$secrets/kafka_broker.pem"
# The gateway's certificate chains to its CA and names the hosts clients use.
openssl verify -CAfile "$secrets/gateway_ca.crt" "$secrets/gateway_tls.crt" >/dev/null
openssl x509 -in "$secrets/gateway_tls.crt" -noout -ext subjectAltName | grep -q "DNS:localhost, DNS:gateway, IP Address:127.0.0.1"

echo "check-deploy: promtool check config, check rules, test rules"
(cd compose/prometheus && promtool check rules rules.yml >/dev/null && promtool test rules rules.test.yml >/dev/null)
# The configuration names the rules at their path in the container: checked with it here.
sed "s|/etc/prometheus/rules.yml|$root/compose/prometheus/rules.yml|" compose/prometheus/prometheus.yml > "$secrets/prometheus.yml"
promtool check config "$secrets/prometheus.yml" >/dev/null

echo "check-deploy: k8s overlays (kustomize, kubernetes-validate --strict, the promises of scripts/check-k8s.py)"
python3 scripts/check-k8s.py --k8s-version "$k8s_version" --self-test

echo "check-deploy: ok"
