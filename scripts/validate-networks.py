#!/usr/bin/env python3
"""Validates the network objects a service's manifests carry.

  validate-networks.py FILE...   (each a JSON list of manifests, or one manifest)

NetworkAttachmentDefinitions against schemas/networks (the custom resource, then the CNI
configuration in spec.config by its plugin type). Exits 1 naming each object that fails.
"""
import argparse
import json
import pathlib
import sys

from jsonschema import Draft202012Validator

root = pathlib.Path(__file__).resolve().parent.parent / "schemas" / "networks"
schemas = {p.name: json.loads(p.read_text()) for p in root.glob("*.json")}


def inline(node):
    """Replaces each {"$ref": "<file>.json"} by that file's schema (one directory, no cycles)."""
    if isinstance(node, dict):
        if set(node) == {"$ref"} and node["$ref"] in schemas:
            return inline({k: v for k, v in schemas[node["$ref"]].items() if k != "$schema"})
        return {k: inline(v) for k, v in node.items()}
    if isinstance(node, list):
        return [inline(v) for v in node]
    return node


def validator(name):
    return Draft202012Validator(inline(schemas[name]))


parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("files", nargs="+", metavar="FILE", help="a JSON list of manifests, or one manifest")
args = parser.parse_args()

errors = []
checked = 0
for path in args.files:
    doc = json.loads(pathlib.Path(path).read_text())
    for obj in doc if isinstance(doc, list) else [doc]:
        if obj.get("kind") != "NetworkAttachmentDefinition":
            continue
        checked += 1
        where = f"{path}: {obj.get('metadata', {}).get('name')}"
        for e in validator("network-attachment-definition.json").iter_errors(obj):
            errors.append(f"{where}: {'/'.join(map(str, e.path))}: {e.message}")
        try:
            config = json.loads(obj["spec"]["config"])
        except (KeyError, TypeError, ValueError) as e:
            errors.append(f"{where}: spec.config is not JSON: {e}")
            continue
        schema = f"cni-{config.get('type')}.json"
        if schema not in schemas:
            errors.append(f"{where}: no schema for CNI plugin type {config.get('type')!r}")
            continue
        for e in validator(schema).iter_errors(config):
            errors.append(f"{where}: config/{'/'.join(map(str, e.path))}: {e.message}")
for e in errors:
    print(e, file=sys.stderr)
print(f"validate-networks: {checked} attachment(s), {len(errors)} error(s)")
sys.exit(1 if errors or checked == 0 else 0)
