#!/bin/sh
# Creates the suite's topics where no operator manages them, as Strimzi's KafkaTopics would:
# each with its partitions and retention, and one command topic per member cluster. Topics
# that exist keep their data; their retention is set again. Run by the Job in job.yaml with
# the admin's client properties (the Secret gedge-kafka-admin, key client.properties).
set -eu
k=/opt/kafka/bin
b="--bootstrap-server $KAFKA_BOOTSTRAP --command-config /etc/gedge-kafka-admin/client.properties"
create() {
  $k/kafka-topics.sh $b --create --if-not-exists --topic "$1" --partitions "$2" --replication-factor "$REPLICATION" \
    --config retention.ms="$3" --config min.insync.replicas="$MIN_ISR"
  $k/kafka-configs.sh $b --alter --entity-type topics --entity-name "$1" --add-config retention.ms="$3"
}
grep -v '^#' /etc/gedge-topics/topics.txt | while read -r name partitions retention; do
  [ -n "$name" ] && create "$name" "$partitions" "$retention"
done
for c in $(echo "$MEMBER_CLUSTERS" | tr ',' ' '); do
  create "gedge.agent.$c" 4 604800000
done
echo "topics ready"
