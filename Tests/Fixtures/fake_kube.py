#!/usr/bin/env python3
"""Test fixture: the part of the Kubernetes API that node labelling uses, on loopback.

  fake_kube.py NODE_NAME INITIAL_LABELS_JSON

GET  /api/v1/nodes/<name>   the Node (404 Status for another name)
PATCH /api/v1/nodes/<name>  JSON merge patch (RFC 7386) only: other content types get 415
Every call needs "Authorization: Bearer test-token" (401 otherwise).
GET  /debug/patches          {"patches": N}, the number of PATCHes applied
Prints "READY <port>".
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NODE = sys.argv[1]
STATE = {
    "apiVersion": "v1", "kind": "Node",
    "metadata": {"name": NODE, "labels": json.loads(sys.argv[2]), "annotations": {}, "resourceVersion": "1"},
    "status": {},
}
PATCHES = [0]
LOCK = threading.Lock()


def merge(target, patch):
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = merge(target.get(k), v)
    return target


def status(code, reason, message):
    return code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message, "code": code}


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
        if self.path == "/debug/patches":
            return self.reply(200, {"patches": PATCHES[0]})
        if self.headers.get("Authorization") != "Bearer test-token":
            return self.reply(*status(401, "Unauthorized", "Unauthorized"))
        prefix = "/api/v1/nodes/"
        if not self.path.startswith(prefix):
            return self.reply(*status(404, "NotFound", "the server could not find the requested resource"))
        name = self.path[len(prefix):]
        if name != NODE:
            return self.reply(*status(404, "NotFound", f'nodes "{name}" not found'))
        with LOCK:
            if method == "GET":
                return self.reply(200, STATE)
            if self.headers.get("Content-Type") != "application/merge-patch+json":
                return self.reply(*status(415, "UnsupportedMediaType", "the body of the request was in an unknown format"))
            try:
                patch = json.loads(body)
            except ValueError as e:
                return self.reply(*status(400, "BadRequest", str(e)))
            merge(STATE, patch)
            STATE["metadata"]["resourceVersion"] = str(int(STATE["metadata"]["resourceVersion"]) + 1)
            PATCHES[0] += 1
            return self.reply(200, STATE)

    def do_GET(self):
        self.route("GET")

    def do_PATCH(self):
        self.route("PATCH")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"READY {server.server_address[1]}", flush=True)
server.serve_forever()
