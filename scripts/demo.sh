#!/usr/bin/env bash
# The demo: three simulated cluster agents (the GS-Scheduler seed's topology), the scheduler
# and the gateway run against the local stack. A producer publishes schedule requests to
# Kafka under every policy; then the GS-Engine seed's service definition goes through the
# gateway, and gedgectl follows it; the FaaS seed's chain runs; the autoscaler takes a
# service over the edge and back; the GS-AIflow seed's service runs as a workflow; the web
# console is photographed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/scripts/args.sh"
script_help "$@"
[ $# -eq 0 ] || refuse "scripts/demo.sh (no arguments)" "$1"
bin="${GEDGE_BIN_DIR:-$root/.build/debug}"
state="$root/.local"
mkdir -p "$state"
# A step whose outcome did not come: say which, show the logs named, end with status 1 (the
# EXIT trap stops what was started).
fail() {
  local what="$1"; shift
  echo "demo: $what" >&2
  for log in "$@"; do echo "--- $state/$log.log (last lines)" >&2; tail -n 15 "$state/$log.log" >&2; done
  exit 1
}

agents=()
for c in cloud edge1 edge2; do
  # edge1 also runs the FaaS seed's detection function: each replica a local process.
  "$bin/agent" --agent-cluster "$c" --agent-driver simulated --agent-topology "$root/config/topology-seed.json" \
    --agent-sim-exec "darknet-detail-detection-model=$bin/gedge-faas-demo detect" \
    --agent-metrics-interval 1s --http-port 0 --log-format text >"$state/agent-$c.log" 2>&1 &
  agents+=($!)
done
"$bin/scheduler" --log-format text --http-port 9101 --scheduler-producers trusted >"$state/scheduler.log" 2>&1 &
scheduler=$!
GEDGE_GATEWAY_ADMIN_TOKEN_FILE="$state/admin-token" "$bin/gateway" --log-format text --http-port 8888 >"$state/gateway.log" 2>&1 &
gateway=$!
trap 'kill -TERM $scheduler $gateway "${agents[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
export GEDGE_TOKEN_FILE="$state/admin-token" GEDGE_SERVER=http://127.0.0.1:8888
ctl="$bin/gedgectl"

for _ in $(seq 1 100); do
  curl -fsS http://127.0.0.1:9101/readyz >/dev/null 2>&1 && break
  kill -0 $scheduler 2>/dev/null || { echo "scheduler exited; see $state/scheduler.log" >&2; tail -n 20 "$state/scheduler.log" >&2; exit 1; }
  sleep 0.2
done
for _ in $(seq 1 100); do
  curl -fsS http://127.0.0.1:8888/readyz >/dev/null 2>&1 && break
  kill -0 $gateway 2>/dev/null || { echo "gateway exited; see $state/gateway.log" >&2; tail -n 20 "$state/gateway.log" >&2; exit 1; }
  sleep 0.2
done
# Every agent has reported (the scheduler is ready with one).
for _ in $(seq 1 100); do
  [ "$("$ctl" --json clusters | python3 -c 'import json,sys; print(sum(1 for c in json.load(sys.stdin)["clusters"] if not c["stale"]))')" = 3 ] && break
  sleep 0.2
done
[ "$("$ctl" --json clusters | python3 -c 'import json,sys; print(sum(1 for c in json.load(sys.stdin)["clusters"] if not c["stale"]))')" = 3 ] \
  || fail "the three clusters did not all report within 20 s" agent-cloud agent-edge1 agent-edge2 scheduler
echo "== scheduler ready (pid $scheduler; ops on http://127.0.0.1:9101/metrics; log $state/scheduler.log)"
echo "== gateway ready on http://127.0.0.1:8888 (pid $gateway; admin token in $state/admin-token; log $state/gateway.log)"
"$ctl" clusters
"$bin/gedge-demo"

echo
echo "== GS-Engine: the seed's service definition through the gateway, as its curl sent it, with a project token"
token="$("$ctl" --json token create --user user1 --workspace w1 --project p1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
# The namespaces of the seeds' services and workflows are p1's (bound by the admin).
"$ctl" namespaces bind p1 edge,shop,aieye
# A rerun starts clean: the admin token sees every project's services.
"$ctl" service delete edge/app1 >/dev/null 2>&1 && sleep 1 || true
answer="$(curl -s -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/yaml' --data-binary @"$root/config/gse/app1.yaml" http://127.0.0.1:8888/gse/service/create)"
echo "$answer" | python3 -c 'import json,sys; a=json.load(sys.stdin)["res"]; print("request", a["request_id"], "policy", a["policy"]); [print("  generated", m["kind"], m["metadata"]["name"]) for m in a.get("manifests", [])]' \
  || { echo "$answer"; exit 1; }
id="$(echo "$answer" | python3 -c 'import json,sys; print(json.load(sys.stdin)["res"]["request_id"])')"
echo "== gedgectl watch $id"
"$ctl" --token "$token" watch "$id"
"$ctl" --token "$token" service list
echo "== a bad definition gets the field and the reason"
curl -s -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/yaml' \
  --data 'name: App_1' http://127.0.0.1:8888/gse/service/create; echo
echo
echo "== GS-Engine's network acceleration: the dual path (a macvlan data network and an SR-IOV virtual function) and network filtering"
"$ctl" service delete edge/stream >/dev/null 2>&1 && sleep 1 || true
"$ctl" --token "$token" service create -f "$root/config/gse/dual-path.yaml" --watch
# Only edge1's first two workers are on the data network and offer virtual functions: the
# placement above is on one of them.
echo "== a network entry the schema refuses gets the field and the reason"
curl -s -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/yaml' \
  --data-binary $'name: bad-net\nnamespace: edge\ncontainers: [a]\nports: [80]\ntype: ClusterIP\nnetworks: [{name: data-net, type: macvlan}]\n' \
  http://127.0.0.1:8888/gse/service/create; echo
echo "== recent requests"
"$ctl" --token "$token" requests --limit 5
echo "== scheduler metrics"
curl -fsS http://127.0.0.1:9101/metrics | grep -E '^gedge_scheduler_(requests|messages)' || true
echo
echo "== FaaS on the distributed edge: motion -> detection function (scaled from zero) -> accident/fire/knife -> notifier -> webhook"
"$bin/gedge-faas-demo" sink --port 9180 --key demo-signing-key >"$state/sink.log" 2>&1 &
sink=$!
"$bin/notifier" --log-format text --http-port 9105 --notifier-webhooks http://127.0.0.1:9180/hook \
  --notifier-webhook-signing-key demo-signing-key >"$state/notifier.log" 2>&1 &
notifier=$!
"$bin/faas-trigger" --log-format text --http-port 9104 --faas-cluster edge1 --faas-queue-default motion \
  --faas-scaledobjects "$root/config/faas/darknet-scaledobject-demo.yaml" \
  --faas-rabbitmq-management-url http://guest:guest@127.0.0.1:${GEDGE_AMQP_MGMT_PORT:-15672} >"$state/faas-trigger.log" 2>&1 &
trigger=$!
trap 'kill -TERM $scheduler $gateway $trigger $notifier $sink "${agents[@]}" 2>/dev/null || true; pkill -TERM -f "gedge-faas-demo detect" || true; wait 2>/dev/null || true' EXIT
for port in 9104 9105; do
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
done
sleep 1
"$ctl" functions
run="demo$(date +%s)"
"$bin/gedge-faas-demo" motion --count 12 --run "$run"
for _ in $(seq 1 150); do
  n="$(curl -fsS "http://127.0.0.1:9105/v1/notifications?limit=500" | python3 -c "import json,sys; print(sum(1 for x in json.load(sys.stdin)['notifications'] if x['event_id'].startswith('det-motion-$run') and x['deliveries']['delivered'] == 1))")"
  [ "$n" = 12 ] && break
  sleep 0.2
done
[ "$n" = 12 ] || fail "$n of 12 detections stored and delivered after 30 s" notifier faas-trigger
echo "== 12 detections stored and delivered, signed, to the webhook:"
echo "   webhook calls with a valid signature: $(grep -c "signature valid" "$state/sink.log" || true)"
curl -fsS "http://127.0.0.1:9105/v1/notifications?limit=500" | python3 -c "
import json, sys, collections
c = collections.Counter(x['queue'] for x in json.load(sys.stdin)['notifications'] if x['event_id'].startswith('det-motion-$run'))
print('   by queue:', dict(sorted(c.items())))"
echo "== waiting for the function to go back to zero (cooldownPeriod 5 s)"
for _ in $(seq 1 100); do
  [ "$("$ctl" --json functions | python3 -c 'import json,sys; print(json.load(sys.stdin)["functions"][0]["replicas"])')" = 0 ] && break
  sleep 0.3
done
[ "$("$ctl" --json functions | python3 -c 'import json,sys; print(json.load(sys.stdin)["functions"][0]["replicas"])')" = 0 ] \
  || fail "the function did not go back to zero within 30 s" faas-trigger
"$ctl" function detail-detection/darknet-detail-detection-scaling

echo
echo "== Autoscaler: scale out at home, over the edge to the nearest neighbour, and back in"
"$bin/autoscaler" --log-format text --http-port 9106 --autoscaler-interval 1s >"$state/autoscaler.log" 2>&1 &
autoscaler=$!
trap 'kill -TERM $scheduler $gateway $trigger $notifier $sink $autoscaler "${agents[@]}" 2>/dev/null || true; pkill -TERM -f "gedge-faas-demo detect" || true; wait 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fsS http://127.0.0.1:9106/readyz >/dev/null 2>&1 && break; sleep 0.2; done
"$ctl" service delete shop/web >/dev/null 2>&1 && sleep 2 || true
"$bin/gedge-demo" --demo-load shop/web=0 >/dev/null
"$ctl" --token "$token" service create -f "$root/config/gse/autoscale-demo.yaml" --watch
"$ctl" --token "$token" scaling set shop/web -f "$root/config/autoscale/web-demo.yaml"
replicas() { "$ctl" --token "$token" --json scaling get shop/web | python3 -c 'import json,sys; p=json.load(sys.stdin); print(p["replicas"], len(p["placements"]))'; }
echo "== offering 48 CPUs to shop/web (4-CPU replicas at a 50 % target want 24; the maximum is 12)"
"$bin/gedge-demo" --demo-load shop/web=48000
for _ in $(seq 1 60); do [ "$(replicas)" = "12 2" ] && break; sleep 1; done
[ "$(replicas)" = "12 2" ] || fail "shop/web did not reach 12 replicas over 2 clusters within 60 s ($(replicas))" autoscaler
"$ctl" --token "$token" scaling get shop/web
echo "== load falls to 1 CPU: the neighbour gives its replicas back first, then edge2 shrinks"
"$bin/gedge-demo" --demo-load shop/web=1000
for _ in $(seq 1 60); do [ "$(replicas)" = "1 1" ] && break; sleep 1; done
[ "$(replicas)" = "1 1" ] || fail "shop/web did not come back to 1 replica at home within 60 s ($(replicas))" autoscaler
"$ctl" --token "$token" scaling decisions shop/web

echo
echo "== GS-AIflow: the seed's AI service (media server, inference, post-processing, redis, database, dashboard) as a workflow"
"$ctl" --token "$token" workflow create -f "$root/config/workflows/aieye.yaml" --watch
wf="$("$ctl" --token "$token" --json workflows | python3 -c 'import json,sys; print(json.load(sys.stdin)["workflows"][0]["id"])')"
"$ctl" --token "$token" workflow get "$wf"
echo "== the web console: http://127.0.0.1:8888/console (sign in with a token: $state/admin-token, or a project token)"
if command -v chromium >/dev/null; then
  for page in clusters/edge2 "workflows/$wf" functions/detail-detection/darknet-detail-detection-scaling autoscaling/shop/web; do
    file="$state/console-$(echo "$page" | cut -d/ -f1).png"
    chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run --user-data-dir="$state/chromium" \
      --virtual-time-budget=8000 --window-size=1280,900 --screenshot="$file" \
      "http://127.0.0.1:8888/console#token=$token&go=/$page" >/dev/null 2>&1 && echo "   screenshot: $file"
  done
fi

echo "== stopping (SIGTERM: finish in-flight work, commit offsets)"
kill -TERM $scheduler $gateway $trigger $notifier $sink $autoscaler "${agents[@]}"
wait
trap - EXIT
tail -n 2 "$state/scheduler.log"
