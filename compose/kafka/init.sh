#!/bin/sh
# Creates the suite's topics and each principal's ACLs, as the admin over SASL_SSL. Each
# service reads and writes only its own topics; a project's producer may only write
# schedule requests (which it must also sign: docs/security.md).
set -eu
s=/run/secrets
admin=/tmp/admin.properties
printf 'security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nssl.truststore.type=PEM\nssl.truststore.location=%s/kafka_ca\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="%s";\n' \
  "$s" "$(tr -d '\n' < "$s/kafka_admin_password")" > "$admin"
k=/opt/kafka/bin
b="--bootstrap-server kafka:9092 --command-config $admin"
# name:partitions:retention.ms, as k8s/components/topics-job/topics.txt (check-deploy compares them).
for t in gedge.schedule.requests:8:604800000 gedge.schedule.requests.dlq:1:2592000000 \
          gedge.scheduler.replies:8:604800000 gedge.scheduler.replies.dlq:1:2592000000 \
          gedge.schedule.results:4:604800000 gedge.cluster.status:1:3600000 \
          gedge.node.accelerators:1:86400000 gedge.faas.replies:1:86400000 \
          gedge.pod-metrics:1:3600000 gedge.autoscaler.replies:1:86400000 \
          gedge.gateway.replies:1:86400000 gedge.agent.cloud:4:604800000 \
          gedge.agent.edge1:4:604800000 gedge.agent.edge2:4:604800000; do
  name=${t%%:*}; rest=${t#*:}
  $k/kafka-topics.sh $b --create --if-not-exists --topic "$name" --partitions "${rest%%:*}" --replication-factor 1 \
    --config retention.ms="${rest#*:}"
done
allow() {
  who=$1; op=$2; shift 2
  for t in "$@"; do
    case "$t" in
      *.) $k/kafka-acls.sh $b --add --allow-principal "User:$who" --operation "$op" --operation Describe --topic "$t" --resource-pattern-type prefixed ;;
      *) $k/kafka-acls.sh $b --add --allow-principal "User:$who" --operation "$op" --operation Describe --topic "$t" ;;
    esac
  done
}
group() { $k/kafka-acls.sh $b --add --allow-principal "User:$1" --operation Read --group "$2" --resource-pattern-type prefixed; }
producer() { $k/kafka-acls.sh $b --add --allow-principal "User:$1" --operation IdempotentWrite --cluster; }

allow scheduler Read gedge.schedule.requests gedge.scheduler.replies gedge.cluster.status
allow scheduler Write gedge.agent. gedge.schedule.results gedge.schedule.requests.dlq gedge.scheduler.replies.dlq
group scheduler gedge-scheduler; producer scheduler

allow gateway Write gedge.schedule.requests gedge.agent.
allow gateway Read gedge.schedule.results gedge.cluster.status gedge.gateway.replies
group gateway gedge-gateway; producer gateway

allow autoscaler Write gedge.schedule.requests gedge.agent.
allow autoscaler Read gedge.cluster.status gedge.pod-metrics gedge.autoscaler.replies
group autoscaler gedge-autoscaler; producer autoscaler

allow faas Write gedge.agent.
allow faas Read gedge.faas.replies gedge.cluster.status
group faas gedge-faas; producer faas

for c in cloud edge1 edge2; do
  allow "agent-$c" Read "gedge.agent.$c"
  allow "agent-$c" Write gedge.scheduler.replies gedge.cluster.status gedge.pod-metrics gedge.autoscaler.replies \
    gedge.faas.replies gedge.gateway.replies gedge.node.accelerators
  group "agent-$c" "gedge-agent-$c"; producer "agent-$c"
done

# A project's producer: schedule requests only.
allow producer-p1 Write gedge.schedule.requests
producer producer-p1
