#!/usr/bin/env bash
# Checks the deployment files without a Docker engine or a cluster:
#   yamllint on compose/, k8s/ and config/;
#   docker compose's own validation (Debian's docker-compose, `config`);
#   every Kubernetes manifest against the schemas of a current Kubernetes (kubernetes-validate,
#   strict: unknown fields are errors), and every file of k8s/base listed in its kustomization.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
k8s_version="${GEDGE_K8S_VERSION:-1.33.0}"

echo "check-deploy: yamllint"
python3 -m yamllint -s compose k8s config .yamllint

echo "check-deploy: docker-compose config"
docker-compose -f compose/docker-compose.yml config -q

echo "check-deploy: kubernetes-validate --strict (Kubernetes $k8s_version)"
manifests=()
for f in k8s/base/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] && continue
  manifests+=("$f")
  grep -qx "  - $(basename "$f")" k8s/base/kustomization.yaml || { echo "check-deploy: $f is not in k8s/base/kustomization.yaml" >&2; exit 1; }
done
python3 -m kubernetes_validate --strict -k "$k8s_version" --quiet "${manifests[@]}"

# Resources the kustomization names must exist.
python3 - <<'PY'
import os, sys, yaml
k = yaml.safe_load(open("k8s/base/kustomization.yaml"))
missing = [r for r in k["resources"] if not os.path.exists(os.path.join("k8s/base", r))]
if missing:
    sys.exit(f"check-deploy: kustomization names missing files: {missing}")
PY
echo "check-deploy: ok"
