#!/usr/bin/env bash
# Installs the Debian packages the suite needs, if any is missing. Non-interactive.
# (prometheus: for promtool, which the tests run on every service's /metrics.)
set -euo pipefail
. "$(dirname "$0")/args.sh"
script_help "$@"
[ $# -eq 0 ] || refuse "scripts/install-deps.sh (no arguments)" "$1"

packages=(
  librdkafka-dev librabbitmq-dev libpq-dev libcurl4-openssl-dev libyaml-dev pkg-config
  postgresql rabbitmq-server kcat python3 openssl procps curl wrk docker-compose chromium
  prometheus
)
# Python tools the tests and checks run: Kubernetes schemas, the OpenAPI validator, yamllint.
python_tools() {
  python3 -c 'import kubernetes_validate, openapi_spec_validator, yaml, yamllint, schemathesis' 2>/dev/null && command -v schemathesis >/dev/null && return 0
  echo "install-deps: installing kubernetes-validate, openapi-spec-validator, pyyaml, yamllint, schemathesis (PyPI)"
  python3 -m pip install -q --disable-pip-version-check kubernetes-validate openapi-spec-validator pyyaml yamllint schemathesis </dev/null
  command -v pyenv >/dev/null && pyenv rehash || true
}
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  python_tools
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Packages' own service starts are refused: this project starts its servers itself.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
python_tools
