"""The published stack-file schema: generated from the models, committed, current, and what
editors check stack files with; the README's stack reference comes from the same schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from infra.stackfile import PROJECT_ROOT, STACK_FILE_KEYS, STACKS_DIR
from mlplatform import schema
from mlplatform.cli import main
from mlplatform.readme import block
from mlplatform.reference import README_END, README_START, rows

STACK_FILES = sorted(STACKS_DIR.glob("Pulumi.*.yaml"))
SCHEMA_COMMENT = "# yaml-language-server: $schema=../docs/schema/stack.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    document = schema.document()
    jsonschema.Draft202012Validator.check_schema(document)
    return jsonschema.Draft202012Validator(document)


def dev() -> dict[str, Any]:
    return yaml.safe_load((STACKS_DIR / "Pulumi.dev.yaml").read_text())


def problems(validator: jsonschema.Draft202012Validator, document: dict) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_the_committed_schema_is_the_one_the_models_generate():
    assert schema.SCHEMA_FILE.read_text() == schema.document_text(), (
        "docs/schema/stack.schema.json is stale: run `python -m mlplatform.schema`"
    )


def test_mlplatform_schema_prints_it(capsys):
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == schema.SCHEMA_FILE.read_text()


def test_the_readme_reference_is_the_one_the_schema_generates():
    shown = block(PROJECT_ROOT / "README.md", README_START, README_END)
    assert shown == schema.reference().strip(), (
        "README.md's stack reference is stale: run `python -m mlplatform.schema`"
    )


@pytest.mark.parametrize("path", STACK_FILES, ids=[p.name for p in STACK_FILES])
def test_every_shipped_stack_file_validates_and_names_the_schema(validator, path: Path):
    assert path.read_text().splitlines()[0] == SCHEMA_COMMENT
    assert problems(validator, yaml.safe_load(path.read_text())) == []


def test_the_stack_file_keys_are_the_loaders():
    assert set(schema.document()["properties"]) == STACK_FILE_KEYS


@pytest.mark.parametrize(
    ("key", "value", "where"),
    [
        ("mlplatform:netwrok", {"cidr": "10.0.0.0/16"}, "config"),
        ("aws:regoin", "us-east-1", "config"),
        ("docker-build:hots", "unix:///var/run/docker.sock", "config"),
    ],
)
def test_a_typo_in_a_key_is_rejected(validator, key, value, where):
    document = dev()
    document["config"][key] = value
    assert any(p.startswith(f"{where}: '{key}'") for p in problems(validator, document))


def test_a_typo_inside_a_section_is_rejected(validator):
    document = dev()
    document["config"]["mlplatform:network"]["natGateway"] = "single"
    assert problems(validator, document) == [
        "config.mlplatform:network: Additional properties are not allowed "
        "('natGateway' was unexpected)"
    ]


def test_keys_of_other_namespaces_are_left_to_the_engine_and_providers(validator):
    document = dev()
    document["config"].update({"aws:profile": "dev", "pulumi:tags": {"team": "ml"}})
    assert problems(validator, document) == []


def test_values_are_checked_against_enums_and_bounds(validator):
    document = dev()
    document["config"]["mlplatform:environment"] = "production"
    document["config"]["mlplatform:network"]["azCount"] = 9
    document["config"]["aws:region"] = "us-east-9"
    assert len(problems(validator, document)) == 3


def test_training_and_serving_keys_are_checked_against_the_plane_chosen(validator):
    document = dev()
    model = document["config"]["mlplatform:models"][0]
    model["training"] = {"plane": "eks", "pool": "l4", "instanceType": "ml.g5.xlarge"}
    model["serving"] = {"mode": "serverless", "minInstances": 2}
    found = problems(validator, document)
    assert any("training" in p and "'instanceType' was unexpected" in p for p in found)
    assert any("serving" in p and "'minInstances' was unexpected" in p for p in found)
    model["training"] = {"plane": "gke"}
    assert any(
        "'gke' is not one of ['eks', 'sagemaker']" in p for p in problems(validator, document)
    )


def test_a_secure_value_validates_wherever_a_string_does(validator):
    document = dev()
    secret = {"secure": "v1:AAAA"}
    document["config"]["mlplatform:tags"]["owner"] = secret
    document["config"]["mlplatform:secrets"]["another"] = secret
    document["config"]["mlplatform:alerts"] = {"emails": [secret]}
    assert problems(validator, document) == []
    document["config"]["mlplatform:budget"]["monthlyUsd"] = secret
    assert problems(validator, document), "a number is not a string"


def test_esc_environments_validate_as_a_list_or_an_inline_definition(validator):
    document = dev()
    for block_ in (["myorg/aws-dev"], {"imports": ["myorg/aws-dev"], "values": {"x": 1}}):
        document["environment"] = block_
        assert problems(validator, document) == []
    document["environment"] = "myorg/aws-dev"
    assert problems(validator, document)


def test_every_key_of_the_reference_is_described():
    assert [row.path for row in rows(schema.document()) if not row.description] == []


def test_the_schema_is_not_stricter_than_the_loader_on_shipped_variants(validator, tmp_path):
    """Every shipped stack with its optional sections removed still validates under both."""
    from infra.stackfile import load_stack_file

    for path in STACK_FILES:
        document = copy.deepcopy(yaml.safe_load(path.read_text()))
        for key in ("mlplatform:storage", "mlplatform:registry", "mlplatform:budget"):
            document["config"].pop(key, None)
        assert problems(validator, document) == [], path.name
        variant = tmp_path / path.name
        variant.write_text(json.dumps(document))
        load_stack_file(variant)
