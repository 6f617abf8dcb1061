"""Read a stack's config, from its YAML file or from the Pulumi runtime, and validate it.

Both paths end in `validate`, which turns pydantic's errors into one message per problem:
`stacks/Pulumi.dev.yaml:12: mlplatform:network.cidr = '10.0.0.0/8': <why>. Allowed: <what>`.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import ValidationError

from infra.config import (
    PROJECT,
    SCHEMA_KEYS,
    StackConfig,
    StackConfigError,
    describe_allowed,
    field_at,
    suggest,
)
from infra.config.base import provider_config_keys
from infra.config.manifests import model_problems
from infra.config.models import UNION_TAGS
from infra.config.stack import members

# What an encrypted `secure:` value becomes when it is planned without the stack's key.
SECRET_PLACEHOLDER = "[secret]"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PulumiProject:
    """Where Pulumi finds this project's program and stack files, as `Pulumi.yaml` says."""

    root: Path
    main: Path  # the program file Pulumi runs
    stacks_dir: Path


def pulumi_project(root: Path = PROJECT_ROOT) -> PulumiProject:
    """`main` and `stackConfigDir` from `<root>/Pulumi.yaml`, with Pulumi's defaults: both
    are the project folder, and a `main` folder runs its `__main__.py`."""
    path = root / "Pulumi.yaml"
    document = yaml.safe_load(path.read_text()) if path.is_file() else None
    settings = document if isinstance(document, dict) else {}
    main = root / str(settings.get("main") or ".")
    return PulumiProject(
        root=root,
        main=main / "__main__.py" if main.is_dir() else main,
        stacks_dir=root / str(settings.get("stackConfigDir") or "."),
    )


STACKS_DIR = pulumi_project().stacks_dir

KeyPath = tuple[str | int, ...]
# Top-level keys of a Pulumi stack file: config, the secrets provider's settings, and the Pulumi
# ESC environments it imports (`environment: [org/project/env]`), whose values the engine merges
# into config at run time (offline they are unknown, like secrets).
STACK_FILE_KEYS = {"config", "environment", "secretsprovider", "encryptedkey", "encryptionsalt"}


@dataclass
class RawStack:
    """A stack's config as plain values, with where each key sits in its file."""

    source: str
    config: dict[str, Any]
    secret_keys: list[str] = field(default_factory=list)
    lines: dict[KeyPath, int] = field(default_factory=dict)
    environments: list[str] = field(default_factory=list)  # Pulumi ESC imports


def stack_file(stack: str, stacks_dir: Path = STACKS_DIR) -> Path:
    return stacks_dir / f"Pulumi.{stack}.yaml"


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _line_map(node: yaml.Node, path: KeyPath, out: dict[KeyPath, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, key_node.value)
            out[child] = key_node.start_mark.line + 1
            _line_map(value_node, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            out[child] = item.start_mark.line + 1
            _line_map(item, child, out)


def _unwrap_secure(value: Any) -> tuple[Any, bool]:
    """Replace `{secure: ...}` ciphertexts (at any depth) with a placeholder."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SECRET_PLACEHOLDER, True
        found = False
        out = {}
        for key, item in value.items():
            out[key], is_secret = _unwrap_secure(item)
            found |= is_secret
        return out, found
    if isinstance(value, list):
        pairs = [_unwrap_secure(item) for item in value]
        return [p[0] for p in pairs], any(p[1] for p in pairs)
    return value, False


def read_stack_file(path: Path) -> RawStack:
    """Parse a stack file; `secure:` values are accepted without decryption."""
    source = display_path(path)
    if not path.is_file():
        available = sorted(p.name for p in path.parent.glob("Pulumi.*.yaml"))
        raise StackConfigError(
            f"{source}: stack file not found; stacks in {display_path(path.parent)}: "
            f"{', '.join(available) or 'none'}"
        )
    text = path.read_text()
    try:
        document = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise StackConfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise StackConfigError(f"{source}: expected a mapping with a `config:` key")
    unknown = set(document) - STACK_FILE_KEYS
    if unknown:
        raise StackConfigError(
            f"{source}: unknown top-level key(s) {sorted(unknown)}; a stack file holds "
            f"{', '.join(sorted(STACK_FILE_KEYS))}"
        )
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _line_map(node, (), lines)
    lines = {key[1:]: line for key, line in lines.items() if key[:1] == ("config",)}
    config: dict[str, Any] = {}
    secret_keys: list[str] = []
    for key, value in (document.get("config") or {}).items():
        config[key], is_secret = _unwrap_secure(value)
        if is_secret:
            secret_keys.append(key)
    return RawStack(
        source=source,
        config=config,
        secret_keys=secret_keys,
        lines=lines,
        environments=_esc_imports(document.get("environment")),
    )


def _esc_imports(block: Any) -> list[str]:
    """The ESC environments of `environment:`, a list of names or an inline `imports:` list."""
    imports = block.get("imports") if isinstance(block, dict) else block
    return [str(name) for name in imports] if isinstance(imports, list) else []


def runtime_config() -> dict[str, Any]:
    """Every config key the Pulumi engine handed to this program, objects decoded."""
    from pulumi.runtime import config as runtime

    merged = {**runtime.get_config_env(), **runtime.CONFIG.get()}
    decoded: dict[str, Any] = {}
    for key, value in merged.items():
        if isinstance(value, str) and value[:1] in "{[":
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        decoded[key] = value
    return decoded


def _to_schema_input(raw: RawStack) -> tuple[dict[str, Any], list[str]]:
    """The `mlplatform:` keys (and `aws:region`) as schema input; other namespaces are the
    engine's and its providers' (`aws:profile`, `kubernetes:context`, …) and pass untouched."""
    data: dict[str, Any] = {}
    problems: list[str] = []
    sections = {f.alias or n for n, f in StackConfig.model_fields.items() if n != "region"}
    for key, value in raw.config.items():
        namespace, _, name = key.partition(":")
        if key in SCHEMA_KEYS:
            data[SCHEMA_KEYS[key]] = value
        elif namespace != PROJECT:
            known = provider_config_keys(namespace)
            if known is not None and name not in known:
                allowed = {f"{namespace}:{k}" for k in known}
                why = f"unknown key of the {namespace} provider; {suggest(key, allowed)}"
                problems.append(_format(raw, (key,), value, why, ", ".join(sorted(allowed))))
        elif name in sections:
            data[name] = value
        else:
            allowed = sorted(f"{PROJECT}:{s}" for s in sections)
            why = f"unknown key; {suggest(key, set(allowed))}"
            problems.append(_format(raw, (key,), value, why, ", ".join(allowed)))
    return data, problems


def _unknown_key(loc: tuple[Any, ...]) -> tuple[str, str]:
    """Why a key is unknown (a near miss, or a key of another plane) and the allowed keys."""
    key = loc[-1]
    _, holders = field_at(loc[:-1])
    allowed = sorted({f.alias or n for m in holders for n, f in m.model_fields.items()})
    why = "unknown key"
    others = _sibling_members(loc[:-1])
    owners = [m for m in others if any(key in (n, f.alias) for n, f in m.model_fields.items())]
    if owners:
        labels = sorted({_member_label(m) for m in owners})
        shared = {label.split(",")[0] for label in labels}
        if len(labels) > 1 and len(shared) == 1:  # every mode of one plane: name the plane
            labels = sorted(shared)
        why += f"; it applies to {' or '.join(labels)} only"
    elif allowed:
        why += f"; {suggest(str(key), set(allowed))}"
    return why, ", ".join(allowed)


def _sibling_members(loc: tuple[Any, ...]) -> list[type]:
    """For a key inside a discriminated union (training, serving), the members not chosen."""
    if not loc or loc[-1] not in UNION_TAGS:
        return []
    info, _ = field_at(loc[:-1])
    chosen = field_at(loc)[1]
    return [m for m in members(info.annotation) if m not in chosen] if info else []


def _member_label(model: type) -> str:
    """'plane: eks', 'plane: sagemaker, mode: serverless': how a union member is chosen."""
    fields = getattr(model, "model_fields", {})
    parts = []
    for key in ("plane", "mode"):
        if key in fields:
            default = fields[key].default
            values = get_args(fields[key].annotation) or (default,)
            parts.append(f"{key}: {'/'.join(str(v) for v in values)}")
    return ", ".join(parts) or model.__name__


def _config_key(loc: tuple[Any, ...]) -> KeyPath:
    """Map a pydantic error location back to the stack file's key path."""
    head, *rest = loc or ("",)
    key = next((k for k, v in SCHEMA_KEYS.items() if v == head), f"{PROJECT}:{head}")
    return (key, *(p for p in rest if p not in UNION_TAGS))


def _format(raw: RawStack, path: KeyPath, value: Any, why: str, allowed: str) -> str:
    line = next((raw.lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in raw.lines), 0)
    where = f"{raw.source}:{line}" if line else raw.source
    dotted = str(path[0]) + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[1:])
    shown = "(missing)" if value is _MISSING else repr(value)
    message = f"{where}: {dotted} = {shown}: {why}"
    if not allowed:
        return message
    stop = "" if message.endswith(("?", ".")) else "."  # after "did you mean …?"
    return f"{message}{stop} Allowed: {allowed}"


_MISSING = object()


def validate(raw: RawStack) -> StackConfig:
    """Validate a stack's config against the schema or raise one readable StackConfigError."""
    data, problems = _to_schema_input(raw)
    try:
        config = StackConfig.model_validate(data)
    except ValidationError as exc:
        config = None
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            path = _config_key(loc)
            value = _MISSING if error["type"] == "missing" else error.get("input")
            why = str(error["msg"]).removeprefix("Value error, ")
            allowed = describe_allowed(loc)
            if error["type"] == "extra_forbidden":
                why, allowed = _unknown_key(loc)
            if raw.config and _is_secret(path, raw) and value is not _MISSING:
                value = SECRET_PLACEHOLDER
            if not loc:  # a check across sections: its message names the keys itself
                problems.append(f"{raw.source}: {why}")
                continue
            problems.append(_format(raw, path, value, why, allowed))
    if config is not None:
        # Each model entry against its model directory and manifest (model.yaml).
        models_key = f"{PROJECT}:models"
        for index, model in enumerate(config.models):
            for found in model_problems(index, model):
                path = (models_key, *found.path)
                problems.append(_format(raw, path, found.value, found.why, found.allowed))
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise StackConfigError(
            f"{raw.source}: invalid stack config ({count}):\n  " + "\n  ".join(problems)
        )
    assert config is not None
    return config


def _is_secret(path: KeyPath, raw: RawStack) -> bool:
    return bool(path) and path[0] in raw.secret_keys


def load_stack_file(path: Path) -> tuple[StackConfig, RawStack]:
    """Read and validate a stack file (the offline plan's entry)."""
    raw = read_stack_file(path)
    return validate(raw), raw


def load_for_program(stack: str) -> StackConfig:
    """Validate the config the engine gave this program; errors name the stack's file."""
    path = stack_file(stack)
    from pulumi.runtime import config as runtime

    secret_keys = [*runtime.get_config_secret_keys_env(), *runtime._SECRET_KEYS.get()]
    raw = RawStack(source=display_path(path), config=runtime_config(), secret_keys=secret_keys)
    if path.is_file():
        with contextlib.suppress(StackConfigError):
            raw.lines = read_stack_file(path).lines
    return validate(raw)
