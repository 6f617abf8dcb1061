"""Per-model images: content-derived tags, ECR push with a registry cache, references that never
float, AWS containers from sagemaker-core, and script-mode source tarballs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from infra import dlc
from infra.components.images import (
    FRAMEWORK_BASES,
    PLATFORM_CONTEXTS,
    PLATFORM_DOCKERFILE,
    content_tag,
    context_files,
    source_tarball,
)
from infra.config.models import PROJECT_ROOT
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
    def tag_of(root: Path) -> str:
        return content_tag({"": root}, root / "Dockerfile")

    tag = tag_of(context)
    assert tag.startswith("ctx-") and len(tag) == 20
    copy = shutil.copytree(context, tmp_path / "elsewhere")
    (copy / "pkg" / "main.py").touch()
    assert tag_of(copy) == tag
    (copy / "pkg" / "main.py").chmod(0o600)
    assert tag_of(copy) != tag, "file modes end up in the image layers"
    (copy / "pkg" / "main.py").chmod((context / "pkg" / "main.py").stat().st_mode)
    (copy / "pkg" / "main.py").write_text("print('bye')\n")
    assert tag_of(copy) != tag


def test_ignored_files_do_not_change_the_tag_but_the_dockerfile_named_contexts_and_args_do(
    context: Path, tmp_path: Path
):
    def tag_of(**kwargs) -> str:
        return content_tag(
            {"": context, **kwargs.pop("named", {})}, context / "Dockerfile", **kwargs
        )

    tag = tag_of()
    (context / "NOTES.md").write_text("edited\n")
    (context / "data" / "new.bin").write_bytes(b"\2")
    assert tag_of() == tag
    library = tmp_path / "lib"
    library.mkdir()
    (library / "a.py").write_text("x = 1\n")
    assert tag_of(named={"training": library}) != tag, "the platform's libraries are in the image"
    assert tag_of(build_args={"BASE_IMAGE": "python:3.11-slim"}) != tag
    (context / "Dockerfile").write_text("FROM scratch\n")
    assert tag_of() != tag


def test_each_model_builds_its_platform_image_into_its_own_repository(plan: Plan):
    images = {r.name: r.inputs for r in plan.of_type(IMAGE)}
    assert set(images) == {f"mlplatform-{plan.stack}-{m.name}-{m.name}" for m in plan.config.models}
    urls = plan.outputs["repositoryUrls"]
    for model in plan.config.models:
        inputs = images[f"mlplatform-{plan.stack}-{model.name}-{model.name}"]
        framework = model.manifest.framework
        args = {"BASE_IMAGE": FRAMEWORK_BASES[framework], "FRAMEWORK": framework}
        tag = content_tag({"": model.directory, **PLATFORM_CONTEXTS}, PLATFORM_DOCKERFILE, args)
        assert inputs["tags"] == [f"{urls[model.name]}:{tag}"]
        assert inputs["buildArgs"] == {"SOURCE_DATE_EPOCH": "0", **args}
        assert inputs["push"] is True and inputs["platforms"] == ["linux/amd64"]
        # Relative paths: state must not depend on the checkout path.
        assert inputs["context"]["location"] == str(model.directory.relative_to(PROJECT_ROOT))
        assert inputs["context"]["named"] == {
            name: {"location": name} for name in ("images", "serving", "training")
        }
        assert inputs["dockerfile"]["location"] == "images/Dockerfile"
        assert inputs["buildOnPreview"] is False, "previews run without a Docker engine"
        cache = f"{urls[model.name]}:buildcache"
        assert inputs["cacheFrom"] == [{"registry": {"ref": cache}}]
        (cache_to,) = inputs["cacheTo"]
        assert cache_to["registry"]["ref"] == cache
        assert (
            cache_to["registry"]["imageManifest"] is cache_to["registry"]["ociMediaTypes"] is True
        )
        (registry,) = inputs["registries"]
        assert registry["address"] == urls[model.name].split("/")[0]
        assert registry["username"] == "AWS"
        assert plan.outputs["imageRefs"][model.name]["platform"] == f"{urls[model.name]}:{tag}"


def test_workloads_run_content_tagged_or_pinned_images_and_nothing_says_latest(plan: Plan):
    text = json.dumps([r.inputs for r in plan.resources])
    assert ":latest" not in text
    for model in plan.config.models:
        refs = plan.outputs["imageRefs"][model.name]
        assert refs["platform"] in text, "prepare and evaluate (or EKS jobs) run the platform image"
        assert refs["serving"] in text
        assert (
            refs["serving"].rsplit(":", 1)[-1].startswith("ctx-") or ".dkr.ecr." in refs["serving"]
        )
    for resource in plan.of_type("aws:sagemaker/model:Model"):
        container = resource.inputs["primaryContainer"]
        assert "image" in container or "modelPackageName" in container


def test_a_tensorflow_serving_model_serves_from_the_aws_container_sagemaker_core_names(plan_of):
    plan = plan_of("dev")
    refs = plan.outputs["imageRefs"]["mnist-keras"]
    from sagemaker.core import image_uris

    expected = image_uris.retrieve(
        "tensorflow",
        "us-east-1",
        version="2.19.0",
        image_scope="inference",
        instance_type="ml.m5.large",
    )
    assert refs["serving"] == expected
    model = plan.get("aws:sagemaker/model:Model", "mlplatform-dev-mnist-keras")
    assert model.inputs["primaryContainer"]["image"] == expected
    assert model.inputs["primaryContainer"]["environment"] == {
        "SAGEMAKER_TFS_DEFAULT_MODEL_NAME": "saved_model"
    }


def python_version(framework: str, scope: str, version: str) -> str | None:
    """The Python version sagemaker-core's config lists last for a container (its default)."""
    from sagemaker.core import image_uris

    config = json.loads(
        (Path(image_uris.__file__).parent / "image_uri_config" / f"{framework}.json").read_text()
    )
    spec = (config.get(scope) or config)["versions"][version]
    return (spec.get("py_versions") or [None])[-1]


def test_the_container_table_matches_sagemaker_core_for_every_entry():
    from sagemaker.core import image_uris

    checked = 0
    for framework, scopes in dlc.table()["images"].items():
        for scope, versions in scopes.items():
            for version, processors in versions.items():
                for processor in processors:
                    py = python_version(framework, scope, version)
                    for region in ("us-east-1", "eu-west-1", "ap-southeast-2"):
                        expected = image_uris.retrieve(
                            framework,
                            region,
                            version=version,
                            py_version=py,
                            image_scope=scope,
                            instance_type=dlc.PROCESSOR_TYPES[processor],
                        )
                        got = dlc.image_uri(framework, scope, version, region, processor == "gpu")
                        assert got == expected, (framework, scope, version, processor, region)
                        checked += 1
    assert checked > 100


def test_an_unknown_container_version_is_refused_with_what_exists():
    with pytest.raises(
        dlc.UnknownContainer, match=r"no AWS tensorflow inference container 1\.0.*2\.19\.0"
    ):
        dlc.image_uri("tensorflow", "inference", "1.0", "us-east-1", gpu=False)


def test_source_tarballs_are_deterministic_and_honour_dockerignore(tmp_path: Path, context: Path):
    first, digest = source_tarball(context, tmp_path / "a")
    again, same = source_tarball(
        shutil.copytree(context, tmp_path / "copy" / context.name), tmp_path / "b"
    )
    assert digest == same and first.read_bytes() == again.read_bytes()
    import tarfile

    with tarfile.open(first) as archive:
        assert sorted(archive.getnames()) == [
            ".dockerignore",
            "Dockerfile",
            "KEEP.md",
            "pkg/main.py",
        ]
        assert {m.mtime for m in archive.getmembers()} == {0}


def test_the_offline_plan_resolves_images_to_a_deterministic_digest(plan_of):
    image = plan_of("dev").get(IMAGE, "mlplatform-dev-digits-digits")
    assert image.outputs["digest"].startswith("sha256:") and len(image.outputs["digest"]) == 71
    assert image.outputs["ref"] == f"{image.inputs['tags'][0]}@{image.outputs['digest']}"
