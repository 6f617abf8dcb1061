"""The stack file's JSON Schema, generated from the pydantic models in `infra.config`.

Shaped as a whole stack file (`config:` with `aws:region` and one `mlplatform:<section>` key per
section, plus Pulumi's `environment`, `secretsprovider`, `encryptedkey`, `encryptionsalt`), so an
editor checks `stacks/Pulumi.<stack>.yaml` as it is typed (yaml-language-server reads the
`$schema` comment on a file's first line). Descriptions, defaults, enums and bounds come from the
models; where a string is allowed a `{secure: …}` ciphertext is too.

`python -m mlplatform.schema` rewrites docs/schema/stack.schema.json and the README's stack
reference (`mlplatform.reference`) from the models; tests keep both current.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra.config import PROJECT, SCHEMA_KEYS, StackConfig, aws_regions
from infra.config.base import provider_config_keys
from infra.stackfile import PROJECT_ROOT

SCHEMA_FILE = PROJECT_ROOT / "docs" / "schema" / "stack.schema.json"
# Providers the program uses: their config keys are checked (typos like `aws:regoin`), as the
# loader checks them. Keys of other namespaces (`pulumi:`, a provider not installed) pass.
PROVIDERS = ("aws", "kubernetes", "docker-build")
SECURE = {
    "type": "object",
    "description": "An encrypted value (`pulumi config set --secret`); the offline plan shows "
    "[secret].",
    "properties": {"secure": {"type": "string", "minLength": 1}},
    "required": ["secure"],
    "additionalProperties": False,
}
ESC_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}}


def _config_keys(models: dict[str, Any]) -> dict[str, str]:
    """Stack file key (`mlplatform:gpuPools`) of each model field (`gpuPools`)."""
    fields = models["properties"]
    named = {v: k for k, v in SCHEMA_KEYS.items()}
    return {name: named.get(name, f"{PROJECT}:{name}") for name in fields}


def _drop_titles(node: Any) -> None:
    """Pydantic titles a field after its name ('Monthlyusd'); the key says it better."""
    if isinstance(node, dict):
        for key in ("properties", "patternProperties"):
            for child in node.get(key, {}).values():
                if isinstance(child, dict):
                    child.pop("title", None)
        for child in node.values():
            _drop_titles(child)
    elif isinstance(node, list):
        for child in node:
            _drop_titles(child)


def _allow_secure(node: Any) -> Any:
    """Every free-form string may be a `{secure: …}` ciphertext instead, as Pulumi allows."""
    if isinstance(node, list):
        return [_allow_secure(child) for child in node]
    if not isinstance(node, dict):
        return node
    node = {key: _allow_secure(value) for key, value in node.items()}
    if node.get("type") == "string" and not {"enum", "const"} & node.keys():
        notes = {k: node.pop(k) for k in ("description", "default", "title") if k in node}
        return {**notes, "anyOf": [node, {"$ref": "#/$defs/Secure"}]}
    return node


def _selects(member: dict[str, Any]) -> dict[str, Any]:
    """The condition under which a mapping is this union member: each `const` key equal to its
    value, or absent where the member defaults it (`plane` defaults to sagemaker)."""
    consts = {k: v for k, v in member["properties"].items() if "const" in v}
    condition: dict[str, Any] = {
        "properties": {k: {"const": v["const"]} for k, v in consts.items()}
    }
    required = sorted(k for k, v in consts.items() if "default" not in v)
    if required:
        condition["required"] = required
    return condition


def _discriminate(node: Any, defs: dict[str, Any]) -> Any:
    """Turn pydantic's `oneOf` for a discriminated union (training, serving) into an
    if/then/else chain on `plane` and `mode`, so an editor reports the chosen member's errors
    rather than "not valid under any of the given schemas"."""
    if isinstance(node, list):
        return [_discriminate(child, defs) for child in node]
    if not isinstance(node, dict):
        return node
    node = {key: _discriminate(value, defs) for key, value in node.items()}
    refs = [m.get("$ref", "") for m in node.get("oneOf", [])]
    if not refs or not all(refs):
        return node
    members = [defs[ref.rsplit("/", 1)[-1]] for ref in refs]
    allowed: dict[str, set[Any]] = {}
    for member in members:
        for key, spec in member["properties"].items():
            if "const" in spec:
                allowed.setdefault(key, set()).add(spec["const"])
    chain: dict[str, Any] = {
        "properties": {k: {"enum": sorted(v)} for k, v in sorted(allowed.items())}
    }
    for ref, member in reversed(list(zip(refs, members, strict=True))):
        chain = {"if": _selects(member), "then": {"$ref": ref}, "else": chain}
    notes = {k: v for k, v in node.items() if k != "oneOf"}
    return {**notes, "type": "object", **chain}


def document() -> dict[str, Any]:
    """The JSON Schema of a stack file."""
    models = StackConfig.model_json_schema(by_alias=True, mode="validation")
    defs = models.pop("$defs")
    _drop_titles(models)
    _drop_titles(defs)
    keys = _config_keys(models)
    properties = {keys[name]: spec for name, spec in models["properties"].items()}
    properties["aws:region"] = {**properties["aws:region"], "enum": sorted(aws_regions())}
    provider_keys = {
        f"{namespace}:{key}"
        for namespace in PROVIDERS
        for key in provider_config_keys(namespace) or ()
    }
    checked = [ns for ns in (PROJECT, *PROVIDERS) if ns == PROJECT or provider_config_keys(ns)]
    config = {
        "type": "object",
        "description": "Pulumi config: `aws:region`, one `mlplatform:<section>` key per "
        "section, and any other namespace's keys for the engine and its providers.",
        "properties": properties,
        "required": [keys[name] for name in models.get("required", [])],
        # Unknown keys of a checked namespace are typos; other namespaces belong to the engine.
        "propertyNames": {
            "anyOf": [
                {"enum": sorted({*properties, *provider_keys})},
                {"not": {"pattern": f"^({'|'.join(checked)}):"}},
            ]
        },
    }
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{PROJECT} stack file (Pulumi.<stack>.yaml)",
        "description": "Generated from infra.config.StackConfig by `python -m mlplatform.schema`.",
        "type": "object",
        "properties": {
            "config": config,
            "environment": {
                "description": "Pulumi ESC environments whose values are merged into config at "
                "run time (unknown to the offline plan, like secrets).",
                "anyOf": [
                    ESC_NAMES,
                    {
                        "type": "object",
                        "properties": {"imports": ESC_NAMES, "values": {"type": "object"}},
                        "additionalProperties": False,
                    },
                ],
            },
            "secretsprovider": {"type": "string", "description": "Secrets provider URL."},
            "encryptedkey": {
                "type": "string",
                "description": "Data key of a cloud secrets provider.",
            },
            "encryptionsalt": {"type": "string", "description": "Salt of the passphrase provider."},
        },
        "required": ["config"],
        "additionalProperties": False,
        "$defs": {**defs, "Secure": SECURE},
    }
    schema["properties"]["config"] = _allow_secure(_discriminate(config, defs))
    schema["$defs"] = {
        name: spec if name == "Secure" else _allow_secure(_discriminate(spec, defs))
        for name, spec in schema["$defs"].items()
    }
    return schema


def document_text() -> str:
    """The schema as the committed file holds it."""
    return json.dumps(document(), indent=2, sort_keys=False) + "\n"


def reference() -> str:
    """The README's stack reference table (see `mlplatform.reference`)."""
    from mlplatform.reference import table

    return table(document())


def update_files(root: Path = PROJECT_ROOT) -> list[str]:
    """Rewrite the schema file and the README's reference; the paths that changed."""
    from mlplatform.reference import update_readme

    changed = []
    target = root / SCHEMA_FILE.relative_to(PROJECT_ROOT)
    text = document_text()
    if not target.is_file() or target.read_text() != text:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        changed.append(str(target.relative_to(root)))
    if update_readme(root / "README.md", reference()):
        changed.append("README.md")
    return changed


if __name__ == "__main__":
    updated = update_files()
    print(f"updated {', '.join(updated)}" if updated else "schema and README reference current")
