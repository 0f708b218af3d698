#!/usr/bin/env python3
"""Test fixture: the part of the Kubernetes API a cluster agent uses, on loopback.

  fake_kube_cluster.py

Nodes n1 (4 CPU, 8Gi, ready), n2 (8 CPU, 16Gi, 1 nvidia.com/gpu, ready, labelled) and
n3 (not ready, tainted). Every call needs "Authorization: Bearer test-token" (401 Status
otherwise). Follows the real API's paths, verbs and status codes:

GET    /api/v1/nodes                                       NodeList
GET    /api/v1/pods[?fieldSelector=...|labelSelector=k=v]  PodList, all namespaces
GET    /api/v1/namespaces/<ns>/pods[?labelSelector=k=v]    PodList
GET    /api/v1/namespaces/<ns>/pods/<name>                 Pod (404 Status)
PATCH  /api/v1/namespaces/<name>                           server-side apply of a Namespace
PATCH  /apis/apps/v1/namespaces/<ns>/deployments/<name>    server-side apply: 415 unless
       /api/v1/namespaces/<ns>/services/<name>             application/apply-patch+yaml, 400
                                                           without fieldManager, 404 if the
                                                           namespace does not exist
GET    /apis/apps/v1/namespaces/<ns>/deployments/<name>    readyReplicas reach spec.replicas
                                                           on the second read (pods start),
                                                           never for a deployment named never-ready
GET    /apis/apps/v1/{deployments,statefulsets,replicasets}?labelSelector=k=v, /api/v1/services?...
GET    /apis/apps/v1/namespaces/<ns>/deployments/<name>/scale   autoscaling/v1 Scale (404 Status)
PATCH  .../deployments/<name>/scale                        merge patch of spec.replicas (415 unless
                                                           application/merge-patch+json); on
                                                           scale-in the pods with the lowest
                                                           controller.kubernetes.io/pod-deletion-cost go
PATCH  /api/v1/namespaces/<ns>/pods/<name>                 merge patch of metadata.annotations
PATCH  /apis/apps/v1/namespaces/<ns>/deployments/<name>    also a merge patch of metadata.annotations
                                                           (application/merge-patch+json), or a strategic
                                                           merge patch of the containers by name
                                                           (application/strategic-merge-patch+json; the
                                                           pods are replaced, as a rollout would)
GET    /apis/metrics.k8s.io/v1beta1/pods[?labelSelector=]  PodMetricsList: every pod 124m CPU
                                                           (123456789n), 64Mi memory (65536Ki)
DELETE deployments, pods, services, namespaces by path (deleting a deployment deletes its pods)
GET    /debug/state                                        {"namespaces", "deployments", "pods", "applies"}
Prints "READY <port>".
"""
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
NODES = [
    {"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
     "spec": {}, "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                            "conditions": [{"type": "Ready", "status": "True"}]}},
    {"metadata": {"name": "n2", "labels": {"kubernetes.io/hostname": "n2", "accelerator.gedge.io/nvidia-gpu.count": "1"}},
     "spec": {}, "status": {"allocatable": {"cpu": "8", "memory": "16Gi", "nvidia.com/gpu": "1", "pods": "110"},
                            "conditions": [{"type": "Ready", "status": "True"}]}},
    {"metadata": {"name": "n3", "labels": {"kubernetes.io/hostname": "n3"}},
     "spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]},
     "status": {"allocatable": {"cpu": "4", "memory": "8Gi"}, "conditions": [{"type": "Ready", "status": "False"}]}},
]
NAMESPACES = {"default": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}}
DEPLOYMENTS = {}   # (ns, name) -> object
SERVICES = {}      # (ns, name) -> object
PODS = {}          # (ns, name) -> object
READS = {}         # (ns, name) -> reads of the deployment
APPLIES = [0]


def status(code, reason, message):
    return code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message, "code": code}


def selected(obj, selector):
    if not selector:
        return True
    labels = obj.get("metadata", {}).get("labels", {}) or {}
    for term in selector.split(","):
        k, eq, v = term.partition("=")
        if not eq:
            if k not in labels:   # an existence requirement
                return False
        elif labels.get(k) != v:
            return False
    return True


def make_pods(ns, dep):
    name = dep["metadata"]["name"]
    for key in [k for k in PODS if k[0] == ns and PODS[k]["metadata"].get("ownerDeployment") == name]:
        del PODS[key]
    spec = dep["spec"]["template"]["spec"]
    host = (spec.get("nodeSelector") or {}).get("kubernetes.io/hostname", "n1")
    labels = dict(dep["spec"]["template"].get("metadata", {}).get("labels", {}))
    for i in range(int(dep["spec"].get("replicas", 1))):
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": f"{name}-{i}", "namespace": ns, "labels": labels, "ownerDeployment": name},
               "spec": {"nodeName": host, "containers": spec.get("containers", [])},
               "status": {"phase": "Running", "podIP": f"10.0.0.{i + 1}",
                          "conditions": [{"type": "Ready", "status": "True"}]}}
        PODS[(ns, pod["metadata"]["name"])] = pod


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def route(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        parts = [p for p in url.path.split("/") if p]
        if url.path == "/debug/state":
            with LOCK:
                return self.reply(200, {"namespaces": sorted(NAMESPACES), "applies": APPLIES[0],
                                        "deployments": {f"{k[0]}/{k[1]}": v for k, v in DEPLOYMENTS.items()},
                                        "pods": {f"{k[0]}/{k[1]}": v["spec"]["nodeName"] for k, v in PODS.items()}})
        if self.headers.get("Authorization") != "Bearer test-token":
            return self.reply(*status(401, "Unauthorized", "Unauthorized"))
        label_sel = (query.get("labelSelector") or [""])[0]
        field_sel = (query.get("fieldSelector") or [""])[0]
        with LOCK:
            is_scale = parts[:2] == ["apis", "apps"] and len(parts) == 8 and parts[5] == "deployments" and parts[7] == "scale"
            is_pod = parts[:3] == ["api", "v1", "namespaces"] and len(parts) == 6 and parts[4] == "pods"
            if method == "GET" and is_scale:
                dep = DEPLOYMENTS.get((parts[4], parts[6]))
                if dep is None:
                    return self.reply(*status(404, "NotFound", f'deployments.apps "{parts[6]}" not found'))
                sel = ",".join(f"{k}={v}" for k, v in sorted((dep["spec"].get("selector", {}).get("matchLabels") or {}).items()))
                return self.reply(200, {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {"name": parts[6], "namespace": parts[4]},
                                        "spec": {"replicas": int(dep["spec"].get("replicas", 1))}, "status": {"replicas": int(dep["spec"].get("replicas", 1)), "selector": sel}})
            if method == "PATCH" and (is_scale or is_pod):
                if self.headers.get("Content-Type") != "application/merge-patch+json":
                    return self.reply(*status(415, "UnsupportedMediaType", "the body of the request was in an unknown format"))
                patch = json.loads(body)
                if is_pod:
                    pod = PODS.get((parts[3], parts[5]))
                    if pod is None:
                        return self.reply(*status(404, "NotFound", f'pods "{parts[5]}" not found'))
                    pod["metadata"].setdefault("annotations", {}).update(patch.get("metadata", {}).get("annotations", {}))
                    return self.reply(200, pod)
                ns, name = parts[4], parts[6]
                dep = DEPLOYMENTS.get((ns, name))
                if dep is None:
                    return self.reply(*status(404, "NotFound", f'deployments.apps "{name}" not found'))
                want = int(patch["spec"]["replicas"])
                owned = [k for k in PODS if k[0] == ns and PODS[k]["metadata"].get("ownerDeployment") == name]
                # The ReplicaSet controller: the lowest deletion cost goes first.
                owned.sort(key=lambda k: int((PODS[k]["metadata"].get("annotations") or {}).get("controller.kubernetes.io/pod-deletion-cost", "0")))
                for k in owned[:max(0, len(owned) - want)]:
                    del PODS[k]
                dep["spec"]["replicas"] = want
                return self.reply(200, {"kind": "Scale", "apiVersion": "autoscaling/v1", "spec": {"replicas": want}})
            is_dep = parts[:2] == ["apis", "apps"] and len(parts) == 7 and parts[5] == "deployments"
            ctype = self.headers.get("Content-Type")
            if method == "PATCH" and is_dep and ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                dep = DEPLOYMENTS.get((parts[4], parts[6]))
                if dep is None:
                    return self.reply(*status(404, "NotFound", f'deployments.apps "{parts[6]}" not found'))
                patch = json.loads(body)
                if ctype == "application/merge-patch+json":
                    dep["metadata"].setdefault("annotations", {}).update(patch.get("metadata", {}).get("annotations", {}))
                    return self.reply(200, dep)
                containers = dep["spec"]["template"]["spec"]["containers"]
                for c in patch.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                    target = next((x for x in containers if x.get("name") == c.get("name")), None)
                    if target is None:
                        return self.reply(*status(422, "Invalid", f'no container "{c.get("name")}"'))
                    res = target.setdefault("resources", {})
                    for kind in ("requests", "limits"):
                        res.setdefault(kind, {}).update(c.get("resources", {}).get(kind, {}))
                make_pods(parts[4], dep)
                return self.reply(200, dep)
            if method == "PATCH":
                if self.headers.get("Content-Type") != "application/apply-patch+yaml":
                    return self.reply(*status(415, "UnsupportedMediaType", "the body of the request was in an unknown format"))
                if not query.get("fieldManager"):
                    return self.reply(*status(400, "BadRequest", "fieldManager is required for apply requests"))
                obj = json.loads(body)
                APPLIES[0] += 1
                if parts[:3] == ["api", "v1", "namespaces"] and len(parts) == 4:
                    NAMESPACES[parts[3]] = obj
                    return self.reply(200, obj)
                ns = parts[4] if parts[:2] == ["apis", "apps"] else parts[3]
                if ns not in NAMESPACES:
                    return self.reply(*status(404, "NotFound", f'namespaces "{ns}" not found'))
                if parts[:2] == ["apis", "apps"] and parts[5] == "deployments":
                    key = (ns, parts[6])
                    obj.setdefault("status", {})["readyReplicas"] = 0
                    DEPLOYMENTS[key] = obj
                    READS[key] = 0
                    make_pods(ns, obj)
                    return self.reply(200, obj)
                if parts[4] == "services":
                    SERVICES[(ns, parts[5])] = obj
                    return self.reply(200, obj)
                return self.reply(*status(404, "NotFound", "the server could not find the requested resource"))
            if method == "GET":
                if parts == ["apis", "metrics.k8s.io", "v1beta1", "pods"]:
                    items = [{"metadata": {"name": p["metadata"]["name"], "namespace": p["metadata"]["namespace"]},
                              "containers": [{"name": c.get("name", "c"), "usage": {"cpu": "123456789n", "memory": "65536Ki"}}
                                             for c in p["spec"]["containers"]]}
                             for p in PODS.values() if selected(p, label_sel)]
                    return self.reply(200, {"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "items": items})
                if parts == ["api", "v1", "nodes"]:
                    return self.reply(200, {"kind": "NodeList", "items": NODES})
                if parts[:3] == ["api", "v1", "namespaces"] and len(parts) == 4:
                    if parts[3] not in NAMESPACES:
                        return self.reply(*status(404, "NotFound", f'namespaces "{parts[3]}" not found'))
                    return self.reply(200, NAMESPACES[parts[3]])
                if parts == ["api", "v1", "pods"] or (len(parts) == 5 and parts[2] == "namespaces" and parts[4] == "pods"):
                    ns = parts[3] if len(parts) == 5 else None
                    items = [p for (pns, _), p in PODS.items() if (ns is None or pns == ns) and selected(p, label_sel)]
                    if field_sel.startswith("metadata.name="):
                        items = [p for p in items if p["metadata"]["name"] == field_sel.split("=", 1)[1]]
                    return self.reply(200, {"kind": "PodList", "items": items})
                if len(parts) == 6 and parts[4] == "pods":
                    pod = PODS.get((parts[3], parts[5]))
                    return self.reply(200, pod) if pod else self.reply(*status(404, "NotFound", f'pods "{parts[5]}" not found'))
                if parts[:2] == ["apis", "apps"] and len(parts) == 4:
                    items = [d for d in DEPLOYMENTS.values() if selected(d, label_sel)] if parts[3] == "deployments" else []
                    return self.reply(200, {"kind": "List", "items": items})
                if parts == ["api", "v1", "services"]:
                    return self.reply(200, {"kind": "ServiceList", "items": [s for s in SERVICES.values() if selected(s, label_sel)]})
                if parts[:2] == ["apis", "apps"] and len(parts) == 7 and parts[5] == "deployments":
                    key = (parts[4], parts[6])
                    dep = DEPLOYMENTS.get(key)
                    if not dep:
                        return self.reply(*status(404, "NotFound", f'deployments.apps "{parts[6]}" not found'))
                    READS[key] += 1
                    if READS[key] >= 2 and parts[6] != "never-ready":
                        dep["status"]["readyReplicas"] = int(dep["spec"].get("replicas", 1))
                    return self.reply(200, dep)
                return self.reply(*status(404, "NotFound", "the server could not find the requested resource"))
            if method == "DELETE":
                if parts[:3] == ["api", "v1", "namespaces"] and len(parts) == 4:
                    return self.reply(200, NAMESPACES.pop(parts[3], None) or {}) if parts[3] in NAMESPACES else self.reply(*status(404, "NotFound", "not found"))
                if parts[:2] == ["apis", "apps"] and len(parts) == 7 and parts[5] == "deployments":
                    key = (parts[4], parts[6])
                    if key not in DEPLOYMENTS:
                        return self.reply(*status(404, "NotFound", f'deployments.apps "{parts[6]}" not found'))
                    del DEPLOYMENTS[key]
                    for pk in [k for k in PODS if k[0] == key[0] and PODS[k]["metadata"].get("ownerDeployment") == key[1]]:
                        del PODS[pk]
                    return self.reply(200, {"kind": "Status", "status": "Success"})
                if len(parts) == 6 and parts[4] in ("services", "pods"):
                    store = SERVICES if parts[4] == "services" else PODS
                    if store.pop((parts[3], parts[5]), None) is None:
                        return self.reply(*status(404, "NotFound", "not found"))
                    return self.reply(200, {"kind": "Status", "status": "Success"})
                return self.reply(*status(404, "NotFound", "the server could not find the requested resource"))
        return self.reply(*status(405, "MethodNotAllowed", method))

    def do_GET(self):
        self.route("GET")

    def do_PATCH(self):
        self.route("PATCH")

    def do_DELETE(self):
        self.route("DELETE")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"READY {server.server_address[1]}", flush=True)
server.serve_forever()
