#!/usr/bin/env bash
# Generates the compose deployment's secrets into compose/secrets/ (or the folder given),
# one value per file, never overwriting one that exists: database, admin token, signing keys,
# each Kafka principal's SCRAM password, the producers' signing secret, and a local CA with
# the broker's TLS certificate (SAN kafka). Nothing here is committed (.gitignore).
set -euo pipefail
. "$(dirname "$0")/args.sh"
script_help "$@"
case "${1:-}" in -*) refuse "scripts/compose-secrets.sh [DIR]" "$1" ;; esac
[ $# -le 1 ] || refuse "scripts/compose-secrets.sh [DIR]" "$2"
dir="${1:-$(cd "$(dirname "$0")/.." && pwd)/compose/secrets}"
mkdir -p "$dir"
umask 077
new() { [ -s "$dir/$1" ] || { "${@:2}" > "$dir/$1"; echo "compose-secrets: $1"; }; }
new postgres_password openssl rand -hex 24
new admin_token openssl rand -hex 32
new webhook_signing_key openssl rand -hex 32
new cluster_credentials_key openssl rand -hex 32
new grafana_admin_password openssl rand -hex 16
new rabbitmq_password openssl rand -hex 24
new producers_secret openssl rand -hex 32
new kafka_cluster_id python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))'
for user in admin scheduler gateway autoscaler faas agent-cloud agent-edge1 agent-edge2 producer-p1; do
  new "kafka_${user}_password" openssl rand -hex 24
done
# A CA of its own (whose key is not kept) and a certificate it signs:
#   issue CA_NAME CA_FILE KEY_FILE CERT_FILE CN EXTENSIONS
issue() {
  local tmp
  tmp="$(mktemp -d)"
  openssl req -x509 -newkey rsa:3072 -nodes -days 825 -subj "/CN=$1" -keyout "$tmp/ca.key" -out "$2" 2>/dev/null
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$3" 2>/dev/null
  openssl req -new -key "$3" -subj "/CN=$5" -out "$tmp/csr" 2>/dev/null
  printf '%b' "$6" > "$tmp/ext"
  openssl x509 -req -in "$tmp/csr" -CA "$2" -CAkey "$tmp/ca.key" -CAcreateserial -days 825 -extfile "$tmp/ext" -out "$4" 2>/dev/null
  rm -rf "$tmp"
}
if [ ! -s "$dir/kafka_broker.pem" ]; then
  work="$(mktemp -d)"
  issue "gedge local CA" "$dir/kafka_ca.crt" "$work/broker.key" "$work/broker.crt" kafka \
    'subjectAltName=DNS:kafka,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n'
  # Kafka's PEM keystore: the private key (PKCS#8, unencrypted) and the certificate chain.
  cat "$work/broker.key" "$work/broker.crt" "$dir/kafka_ca.crt" > "$dir/kafka_broker.pem"
  rm -rf "$work"
  echo "compose-secrets: kafka_ca.crt, kafka_broker.pem (the CA's key is not kept)"
fi
# The gateway's TLS certificate (SAN localhost, 127.0.0.1, gateway): clients trust gateway_ca.crt.
if [ ! -s "$dir/gateway_tls.key" ]; then
  issue "gedge local gateway CA" "$dir/gateway_ca.crt" "$dir/gateway_tls.key" "$dir/gateway_tls.crt" "gedge gateway" \
    'subjectAltName=DNS:localhost,DNS:gateway,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'
  echo "compose-secrets: gateway_ca.crt, gateway_tls.crt, gateway_tls.key (the CA's key is not kept)"
fi
# The containers read the files as their own (non-root) users.
chmod 644 "$dir"/* 2>/dev/null || true
