"""Writes docs/configuration.md from the config schema in gateway/config.py (the one source of truth).

`python scripts/gen_config_docs.py` rewrites the file; `--check` fails when it is stale (the tests run that).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from gateway.config import json_schema
from scripts.generated import emit

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

HEADER = """# Gateway configuration

`python -m gateway --config FILE` reads this YAML. Generated from `gateway/config.py` by
`scripts/gen_config_docs.py`; do not edit by hand. Unknown keys are refused, so a typo is an
error that names the key, never a silently ignored setting.

| key | type | default | description |
| --- | --- | --- | --- |
"""


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The definition a node refers to; for an optional section (`X | None`), X's, so its keys are listed too."""
    options = [o for o in node.get("anyOf", ()) if o.get("type") != "null"]
    if len(options) == 1 and len(node.get("anyOf", ())) == 2 and "$ref" in options[0]:
        node = options[0]
    ref = node.get("$ref")
    return defs[ref.rsplit("/", 1)[-1]] if isinstance(ref, str) else node


def _type(node: dict[str, Any], defs: dict[str, Any]) -> str:
    node = _resolve(node, defs)
    if "const" in node:
        return f"`{node['const']}`"
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if "anyOf" in node or "oneOf" in node:
        options = [_type(o, defs) for o in node.get("anyOf", node.get("oneOf", []))]
        return " \\| ".join(o for o in options if o != "null") + (" or null" if "null" in options else "")
    kind = node.get("type", "object")
    if kind == "array":
        return f"list of {_type(node.get('items', {}), defs)}"
    if kind == "object" and "title" in node:
        return "object"
    return str(kind)


def _rows(prefix: str, node: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    node = _resolve(node, defs)
    rows: list[str] = []
    for name, prop in node.get("properties", {}).items():
        key = f"{prefix}{name}"
        target = _resolve(prop, defs)
        default = prop.get("default")
        if name in node.get("required", []):
            shown = "required"
        elif isinstance(default, dict) or "default" not in prop:
            shown = ""
        else:
            shown = f"`{orjson.dumps(default).decode()}`"
        items = _resolve(target.get("items", {}), defs)
        description = prop.get("description") or target.get("description") or items.get("description", "")
        if name == "type" and "const" in target:
            description = node.get("description", "")
        limits = [f"{k} {v}" for k, v in (("≥", prop.get("minimum")), ("≤", prop.get("maximum"))) if v is not None]
        if prop.get("minItems"):
            limits.append(f"at least {prop['minItems']}")
        text = description + (f" ({', '.join(limits)})" if limits else "")
        if "discriminator" in prop:
            rows.append(f"| `{key}` | object | {shown} | {text}One of the `type`s below. |")
            for option in prop.get("oneOf", []):
                rows.extend(_rows(f"{key}.", option, defs))
            continue
        rows.append(f"| `{key}` | {_type(prop, defs)} | {shown} | {text} |")
        if "properties" in target:
            rows.extend(_rows(key + ".", target, defs))
        elif target.get("type") == "array" and "$ref" in target.get("items", {}):
            rows.extend(_rows(key + "[].", target["items"], defs))
    return rows


def render() -> str:
    schema = json_schema()
    return HEADER + "\n".join(_rows("", schema, schema.get("$defs", {}))) + "\n"


def main() -> int:
    return emit({DOC: render()}, "scripts/gen_config_docs.py")


if __name__ == "__main__":
    sys.exit(main())
