#!/bin/sh
# Starts the compose deployment's Kafka broker (KRaft, one node) with SASL_SSL and SCRAM:
# the configuration is written from compose/kafka/server.properties and the secrets, the
# storage is formatted once with every principal's SCRAM credentials, and the data lives
# under /var/lib/kafka/data (the kafka-data volume).
set -eu
s=/run/secrets
cfg=/tmp/server.properties
cp /etc/gedge-kafka/server.properties "$cfg"
pw() { tr -d '\n' < "$s/kafka_$1_password"; }
printf 'listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="%s";\n' "$(pw admin)" >> "$cfg"
# The admin's client settings, for the healthcheck.
printf 'security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nssl.truststore.type=PEM\nssl.truststore.location=%s/kafka_ca\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="%s";\n' \
  "$s" "$(pw admin)" > /tmp/admin.properties
if [ ! -f /var/lib/kafka/data/meta.properties ]; then
  set --
  for user in admin scheduler gateway autoscaler faas agent-cloud agent-edge1 agent-edge2 producer-p1; do
    set -- "$@" --add-scram "SCRAM-SHA-512=[name=$user,password=$(pw "$user")]"
  done
  /opt/kafka/bin/kafka-storage.sh format -t "$(tr -d '\n' < "$s/kafka_cluster_id")" -c "$cfg" "$@"
fi
exec /opt/kafka/bin/kafka-server-start.sh "$cfg"
