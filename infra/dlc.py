"""AWS Deep Learning Container image URIs, from a table generated with sagemaker-core.

A model may train or serve in an AWS framework container (`image: {training: {dlc: {version:
2.8.0}}}`). Their URIs (registry account per region, repository, tag per version and processor)
come from sagemaker-core's `image_uris.retrieve`, the SDK's maintained lookup; importing it takes
seconds, so `python -m infra.dlc` writes its answers to `dlc_images.json` (like
`instance_types.tsv` from moto) and a test checks the table against it. Nothing is hand-typed.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any, Literal

TABLE = Path(__file__).with_name("dlc_images.json")
Scope = Literal["training", "inference"]
FRAMEWORKS = ("pytorch", "tensorflow", "sklearn", "xgboost")
VERSIONS_KEPT = 6  # the newest versions of each framework and scope
# Instance types that pick the processor variant when the table is generated.
PROCESSOR_TYPES = {"cpu": "ml.m5.xlarge", "gpu": "ml.g5.xlarge"}


class UnknownContainer(ValueError):
    """No Deep Learning Container for that framework, version, scope or processor."""


@cache
def table() -> dict[str, Any]:
    return json.loads(TABLE.read_text())


def versions(framework: str, scope: Scope) -> list[str]:
    """Versions the table knows, oldest first."""
    return list(table()["images"].get(framework, {}).get(scope, {}))


def image_uri(framework: str, scope: Scope, version: str, region: str, gpu: bool) -> str:
    """The container's URI in `region`; UnknownContainer says what exists instead."""
    images = table()["images"].get(framework, {}).get(scope, {})
    if version not in images:
        known = ", ".join(images) or "none"
        raise UnknownContainer(
            f"no AWS {framework} {scope} container {version} (sagemaker-core knows {known})"
        )
    processors = images[version]
    processor = "gpu" if gpu and "gpu" in processors else "cpu"
    if processor not in processors:
        raise UnknownContainer(f"the {framework} {scope} container {version} has no {processor}")
    repository, tag = processors[processor].split(":", 1)
    accounts = table()["accounts"][f"{framework}/{scope}"]
    if region not in accounts:
        raise UnknownContainer(f"no AWS {framework} {scope} containers in {region}")
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{accounts[region]}.dkr.ecr.{region}.{suffix}/{repository}:{tag}"


def generate() -> dict[str, Any]:
    """Ask sagemaker-core for every URI the table holds (seconds: imports the SDK)."""
    from sagemaker.core import image_uris  # pyright: ignore[reportMissingImports]

    config_dir = Path(image_uris.__file__).parent / "image_uri_config"
    images: dict[str, dict[str, dict[str, dict[str, str]]]] = {}
    accounts: dict[str, dict[str, str]] = {}
    for framework in FRAMEWORKS:
        config = json.loads((config_dir / f"{framework}.json").read_text())
        for scope in ("training", "inference"):
            section = config.get(scope) or config
            listed = [
                v for v in section.get("versions", {}) if "registries" in section["versions"][v]
            ]
            kept = sorted(listed, key=_version_key)[-VERSIONS_KEPT:]
            for version in kept:
                spec = section["versions"][version]
                py = (spec.get("py_versions") or [None])[-1]
                for processor, instance in PROCESSOR_TYPES.items():
                    if processor not in spec.get("processors", section.get("processors", ["cpu"])):
                        continue
                    uri = image_uris.retrieve(
                        framework,
                        "us-east-1",
                        version=version,
                        py_version=py,
                        image_scope=scope,
                        instance_type=instance,
                    )
                    tail = uri.split("/", 1)[1]
                    images.setdefault(framework, {}).setdefault(scope, {}).setdefault(version, {})[
                        processor
                    ] = tail
            if kept:
                registries = section["versions"][kept[-1]]["registries"]
                accounts[f"{framework}/{scope}"] = dict(sorted(registries.items()))
    from importlib.metadata import version as installed

    version = installed("sagemaker-core")
    return {
        "source": f"sagemaker-core {version} image_uris.retrieve (python -m infra.dlc)",
        "images": images,
        "accounts": accounts,
    }


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.replace("-", ".").split(".") if p.isdigit())


if __name__ == "__main__":
    TABLE.write_text(json.dumps(generate(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {TABLE}", file=sys.stderr)
