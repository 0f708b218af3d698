#!/usr/bin/env bash
# Generates the compose deployment's secrets into compose/secrets/ (or the folder given),
# one value per file, never overwriting one that exists: database, admin token, signing keys,
# each Kafka principal's SCRAM password, the producers' signing secret, and a local CA with
# the broker's TLS certificate (SAN kafka). Nothing here is committed (.gitignore).
set -euo pipefail
dir="${1:-$(cd "$(dirname "$0")/.." && pwd)/compose/secrets}"
mkdir -p "$dir"
umask 077
new() { [ -s "$dir/$1" ] || { "${@:2}" > "$dir/$1"; echo "compose-secrets: $1"; }; }
new postgres_password openssl rand -hex 24
new admin_token openssl rand -hex 32
new webhook_signing_key openssl rand -hex 32
new grafana_admin_password openssl rand -hex 16
new rabbitmq_password openssl rand -hex 24
new producers_secret openssl rand -hex 32
new kafka_cluster_id python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))'
for user in admin scheduler gateway autoscaler faas agent-cloud agent-edge1 agent-edge2 producer-p1; do
  new "kafka_${user}_password" openssl rand -hex 24
done
if [ ! -s "$dir/kafka_broker.pem" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  openssl req -x509 -newkey rsa:3072 -nodes -days 825 -subj "/CN=gedge local CA" \
    -keyout "$tmp/ca.key" -out "$dir/kafka_ca.crt" 2>/dev/null
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$tmp/broker.key" 2>/dev/null
  openssl req -new -key "$tmp/broker.key" -subj "/CN=kafka" -out "$tmp/broker.csr" 2>/dev/null
  printf 'subjectAltName=DNS:kafka,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' > "$tmp/ext"
  openssl x509 -req -in "$tmp/broker.csr" -CA "$dir/kafka_ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial \
    -days 825 -extfile "$tmp/ext" -out "$tmp/broker.crt" 2>/dev/null
  # Kafka's PEM keystore: the private key (PKCS#8, unencrypted) and the certificate chain.
  cat "$tmp/broker.key" "$tmp/broker.crt" "$dir/kafka_ca.crt" > "$dir/kafka_broker.pem"
  echo "compose-secrets: kafka_ca.crt, kafka_broker.pem (the CA's key is not kept)"
fi
# The gateway's TLS certificate (SAN localhost, 127.0.0.1, gateway) from a CA of its own,
# whose key is not kept either: clients trust gateway_ca.crt.
if [ ! -s "$dir/gateway_tls.key" ]; then
  tmp_gw="$(mktemp -d)"
  openssl req -x509 -newkey rsa:3072 -nodes -days 825 -subj "/CN=gedge local gateway CA" \
    -keyout "$tmp_gw/ca.key" -out "$dir/gateway_ca.crt" 2>/dev/null
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$dir/gateway_tls.key" 2>/dev/null
  openssl req -new -key "$dir/gateway_tls.key" -subj "/CN=gedge gateway" -out "$tmp_gw/gw.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,DNS:gateway,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$tmp_gw/ext"
  openssl x509 -req -in "$tmp_gw/gw.csr" -CA "$dir/gateway_ca.crt" -CAkey "$tmp_gw/ca.key" -CAcreateserial \
    -days 825 -extfile "$tmp_gw/ext" -out "$dir/gateway_tls.crt" 2>/dev/null
  rm -rf "$tmp_gw"
  echo "compose-secrets: gateway_ca.crt, gateway_tls.crt, gateway_tls.key (the CA's key is not kept)"
fi
# The containers read the files as their own (non-root) users.
chmod 644 "$dir"/* 2>/dev/null || true
