"""Per-stack images: content-derived tags, ECR push with a registry cache, and references that
never float."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from infra.components.images import content_tag, context_files
from infra.stackfile import PROJECT_ROOT
from mlplatform.plan import Plan

IMAGE = "docker-build:index:Image"


@pytest.fixture
def context(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /app\n")
    (root / ".dockerignore").write_text("**/__pycache__\n*.md\n!KEEP.md\ndata\n")
    (root / "pkg" / "main.py").write_text("print('hi')\n")
    (root / "pkg" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    (root / "NOTES.md").write_text("notes\n")
    (root / "KEEP.md").write_text("kept\n")
    (root / "data").mkdir()
    (root / "data" / "big.bin").write_bytes(b"\1" * 10)
    return root


def test_the_context_honours_dockerignore_patterns_and_exceptions(context: Path):
    assert context_files(context) == [".dockerignore", "Dockerfile", "KEEP.md", "pkg/main.py"]


def test_the_tag_ignores_location_and_timestamps_but_not_content_or_modes(
    context: Path, tmp_path: Path
):
    tag = content_tag(context)
    assert tag.startswith("ctx-") and len(tag) == 20
    copy = shutil.copytree(context, tmp_path / "elsewhere")
    (copy / "pkg" / "main.py").touch()
    assert content_tag(copy) == tag
    (copy / "pkg" / "main.py").chmod(0o600)
    assert content_tag(copy) != tag, "file modes end up in the image layers"
    (copy / "pkg" / "main.py").chmod((context / "pkg" / "main.py").stat().st_mode)
    (copy / "pkg" / "main.py").write_text("print('bye')\n")
    assert content_tag(copy) != tag


def test_ignored_files_do_not_change_the_tag_but_the_dockerfile_does(context: Path):
    tag = content_tag(context)
    (context / "NOTES.md").write_text("edited\n")
    (context / "data" / "new.bin").write_bytes(b"\2")
    assert content_tag(context) == tag
    (context / "Dockerfile").write_text("FROM scratch\n")
    assert content_tag(context) != tag


def test_each_stack_builds_training_and_serving_into_its_own_repositories(plan: Plan):
    images = {r.name: r.inputs for r in plan.of_type(IMAGE)}
    assert set(images) == {f"mlplatform-{plan.stack}-training", f"mlplatform-{plan.stack}-serving"}
    urls = plan.outputs["repositoryUrls"]
    for image in ("training", "serving"):
        inputs = images[f"mlplatform-{plan.stack}-{image}"]
        tag = content_tag(PROJECT_ROOT / image)
        assert inputs["tags"] == [f"{urls[image]}:{tag}"]
        assert inputs["push"] is True and inputs["platforms"] == ["linux/amd64"]
        assert inputs["context"]["location"] == image, (
            "relative: state must not depend on the checkout path"
        )
        assert inputs["buildOnPreview"] is False, "previews run without a Docker engine"
        cache = f"{urls[image]}:buildcache"
        assert inputs["cacheFrom"] == [{"registry": {"ref": cache}}]
        (cache_to,) = inputs["cacheTo"]
        assert cache_to["registry"]["ref"] == cache
        assert (
            cache_to["registry"]["imageManifest"] is cache_to["registry"]["ociMediaTypes"] is True
        )
        (registry,) = inputs["registries"]
        assert registry["address"] == urls[image].split("/")[0] and registry["username"] == "AWS"
        assert plan.outputs["imageRefs"][image] == f"{urls[image]}:{tag}"


def test_workloads_run_the_content_tagged_images_and_nothing_says_latest(plan: Plan):
    refs = set(plan.outputs["imageRefs"].values())
    text = json.dumps([r.inputs for r in plan.resources])
    assert ":latest" not in text
    used = {ref for ref in refs if ref in text}
    assert used == refs, "both images are run by something in every stack"
    for resource in plan.of_type("aws:sagemaker/model:Model"):
        container = resource.inputs["primaryContainer"]
        assert container.get("image") in refs or "modelPackageName" in container


def test_the_offline_plan_resolves_images_to_a_deterministic_digest(plan_of):
    image = plan_of("dev").get(IMAGE, "mlplatform-dev-serving")
    assert image.outputs["digest"].startswith("sha256:") and len(image.outputs["digest"]) == 71
    assert image.outputs["ref"] == f"{image.inputs['tags'][0]}@{image.outputs['digest']}"
