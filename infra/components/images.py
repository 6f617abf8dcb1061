"""A model's images: built from its directory and pushed to its ECR repositories, or resolved.

Per model and role (training, serving) the manifest says how the image is made:
- `build: platform` (default): the model's *platform image* (images/Dockerfile): its framework's
  base, the platform's `training` and `serving` libraries, its requirements.txt and its code;
- `dockerfile: …`: the model's own Dockerfile, the model directory as context;
- `uri: …`: an existing image, by digest or immutable tag;
- `dlc: {version}`: an AWS Deep Learning Container (infra/dlc.py). A training image not built
  from the model then gets the code as a SageMaker script-mode source tarball.
The platform image is always built: pipeline steps (prepare, the independent evaluator) run in it.
Tags are hashes of what goes into an image, computed here, so they are known at plan time: an
unchanged model re-plans to the same references and no diff.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import stat
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

from infra import dlc
from infra.config import Model
from infra.config.models import PROJECT_ROOT
from infra.context import StackContext

# Overwritable tag in the same repository (the registry allows only `buildcache*` to change).
CACHE_TAG = "buildcache"
TAG_PREFIX = "ctx-"
PLATFORM = docker_build.Platform.LINUX_AMD64
ROLES = ("training", "serving")
PLATFORM_DOCKERFILE = PROJECT_ROOT / "images" / "Dockerfile"
# Named build contexts of the platform image (images/Dockerfile's `COPY --from=…`).
PLATFORM_CONTEXTS = {name: PROJECT_ROOT / name for name in ("training", "serving", "images")}
# Each framework's base image, pinned by tag; CUDA 12.6 runs on the R535+ drivers of current
# SageMaker hosts and EKS GPU AMIs. scikit-learn and XGBoost models run on CPUs.
FRAMEWORK_BASES = {
    "pytorch": "pytorch/pytorch:2.13.0-cuda12.6-cudnn9-runtime",
    "tensorflow": "tensorflow/tensorflow:2.20.0-gpu",
    "sklearn": "python:3.11-slim-bookworm",
    "xgboost": "python:3.11-slim-bookworm",
}
# Where script-mode source tarballs are written before upload (git-ignored).
BUILD_DIR = PROJECT_ROOT / ".mlplatform" / "build"


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regex over `/` paths."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out.append("(?:.*/)?")
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def read_dockerignore(context: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """The context's ignore rules in order, as (is_exception, regex)."""
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    rules = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line[1:] if negate else line).lstrip("/")
        rules.append((negate, _pattern_regex(pattern)))
    return rules


def is_ignored(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a parent folder
    matches everything under it."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negate, regex in rules:
        if any(regex.match(c) for c in candidates):
            ignored = not negate
    return ignored


def context_files(context: Path) -> list[str]:
    """Every file Docker would send for `context`, as sorted `/` paths relative to it."""
    rules = read_dockerignore(context)
    files = []
    for root, _dirs, names in os.walk(context):
        for name in names:
            relative = (Path(root) / name).relative_to(context).as_posix()
            if not is_ignored(relative, rules):
                files.append(relative)
    return sorted(files)


def content_tag(
    contexts: Mapping[str, Path], dockerfile: Path, build_args: Mapping[str, str] | None = None
) -> str:
    """`ctx-` + 16 hex digits of a hash over every context's files (paths, permission bits,
    bytes), the Dockerfile and the build arguments; independent of timestamps, checkout location
    and file order.

    It covers what docker-build's own context hash covers (content, path, mode), so whenever
    the provider decides to rebuild, the tag is new too: an immutable tag is never pushed twice
    with different layers (a umask that changes file modes changes both).
    """
    digest = hashlib.sha256()
    sources = [
        (f"{name}/{rel}", root / rel)
        for name, root in sorted(contexts.items())
        for rel in context_files(root)
    ]
    sources.append(("dockerfile", dockerfile))
    for label, path in sources:
        data = path.read_bytes() if path.is_file() else b""
        mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else 0
        digest.update(f"{label}\0{mode:o}\0{len(data)}\0".encode())
        digest.update(data)
    for key, value in sorted((build_args or {}).items()):
        digest.update(f"arg\0{key}\0{value}\0".encode())
    return TAG_PREFIX + digest.hexdigest()[:16]


def source_tarball(directory: Path, out_dir: Path) -> tuple[Path, str]:
    """A deterministic `sourcedir.tar.gz` of a model directory (SageMaker script mode's
    `sagemaker_submit_directory`): sorted entries, zeroed times and owners, so unchanged code
    gives the same bytes and the same S3 key. Returns the file and its content hash."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for rel in context_files(directory):  # .dockerignore applies here too
            path = directory / rel
            info = tar.gettarinfo(str(path), arcname=rel)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()[:16]
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{directory.name}-{digest}.tar.gz"
    if not target.is_file():
        target.write_bytes(data)
    return target, digest


def repositories_for(model: Model) -> list[str]:
    """The ECR repositories a model needs: its platform image, and its own Dockerfiles'."""
    image = model.manifest.image
    names = [model.name]
    names += [f"{model.name}-{role}" for role in ROLES if getattr(image, role).dockerfile]
    return names


@dataclass(frozen=True)
class ModelImagesArgs:
    """The model's stack entry, the stack, and the repositories its images go to."""

    model: Model
    context: StackContext
    repository_urls: Mapping[str, pulumi.Input[str]]
    registry_id: pulumi.Input[str]
    gpu: Mapping[str, bool]  # per role: whether it runs on GPUs (picks a DLC's processor)


class ModelImages(pulumi.ComponentResource):
    """The platform image (always) and each role's image for one model, by reference."""

    refs: dict[str, pulumi.Output[str]]
    tags: dict[str, str]
    source: pulumi.Output[str] | None  # s3:// URI of the script-mode source tarball, if any

    def __init__(
        self, name: str, args: ModelImagesArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("mlplatform:images:ModelImages", name, None, opts)
        model, manifest = args.model, args.model.manifest
        self._args, self._name = args, name
        self._auth = aws.ecr.get_authorization_token_output(
            registry_id=args.registry_id, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        framework = manifest.framework
        build_args = {"BASE_IMAGE": FRAMEWORK_BASES[framework], "FRAMEWORK": framework}
        self.refs, self.tags = {}, {}
        self.refs["platform"] = self._build(
            model.name,
            {"": model.directory, **PLATFORM_CONTEXTS},
            PLATFORM_DOCKERFILE,
            build_args,
        )
        for role in ROLES:
            source = getattr(manifest.image, role)
            if source.build:
                self.refs[role] = self.refs["platform"]
            elif source.dockerfile:
                self.refs[role] = self._build(
                    f"{model.name}-{role}",
                    {"": model.directory},
                    model.directory / source.dockerfile,
                    {},
                )
            elif source.uri:
                self.refs[role] = pulumi.Output.from_input(source.uri)
            else:
                assert source.dlc is not None
                scope = "training" if role == "training" else "inference"
                self.refs[role] = pulumi.Output.from_input(
                    dlc.image_uri(
                        framework,
                        scope,
                        source.dlc.version,
                        args.context.region,
                        gpu=args.gpu.get(role, False),
                    )
                )
        self.source = None
        if manifest.image.training.uri or manifest.image.training.dlc:
            self.source = self._upload_source(name, model)
        self.register_outputs({"refs": self.refs})

    def _build(
        self,
        repository: str,
        contexts: Mapping[str, Path],
        dockerfile: Path,
        build_args: Mapping[str, str],
    ) -> pulumi.Output[str]:
        """Build and push one image; its reference is `<repository URL>:<content tag>`."""
        args = self._args
        tag = content_tag(contexts, dockerfile, build_args)
        self.tags[repository] = tag
        url = pulumi.Output.from_input(args.repository_urls[repository])
        cache_ref = url.apply(lambda u: f"{u}:{CACHE_TAG}")

        # Relative to the working directory, so state does not depend on the checkout path.
        def where(path: Path) -> str:
            return os.path.relpath(path, Path.cwd())

        named = {k: docker_build.ContextArgs(location=where(v)) for k, v in contexts.items() if k}
        built = docker_build.Image(
            f"{self._name}-{repository}",
            context=docker_build.BuildContextArgs(
                location=where(contexts[""]), named=named or None
            ),
            dockerfile=docker_build.DockerfileArgs(location=where(dockerfile)),
            platforms=[PLATFORM],
            # Deterministic image-config timestamps, so a rebuild of unchanged content
            # yields the same digest and the immutable tag can be pushed again.
            build_args={"SOURCE_DATE_EPOCH": "0", **build_args},
            tags=[url.apply(lambda u, t=tag: f"{u}:{t}")],
            push=True,
            # Previews must work without a Docker engine (CI, the offline plan).
            build_on_preview=False,
            cache_from=[
                docker_build.CacheFromArgs(
                    registry=docker_build.CacheFromRegistryArgs(ref=cache_ref)
                )
            ],
            cache_to=[
                docker_build.CacheToArgs(
                    registry=docker_build.CacheToRegistryArgs(
                        ref=cache_ref,
                        mode=docker_build.CacheMode.MAX,
                        # ECR only stores caches as OCI image manifests.
                        image_manifest=True,
                        oci_media_types=True,
                    )
                )
            ],
            registries=[
                docker_build.RegistryArgs(
                    address=url.apply(lambda u: u.split("/", 1)[0]),
                    username=self._auth.user_name,
                    password=self._auth.password,
                )
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The reference is known at plan time (no diff for unchanged content) yet still
        # depends on the image resource, so nothing runs it before it is pushed.
        return pulumi.Output.all(url, built.urn).apply(lambda v, t=tag: f"{v[0]}:{t}")

    def _upload_source(self, name: str, model: Model) -> pulumi.Output[str]:
        """Upload the model's code for script mode; its S3 URI (content-addressed key)."""
        tarball, digest = source_tarball(model.directory, BUILD_DIR / self._args.context.stack)
        bucket = self._args.context.bucket_names["artifacts"]
        key = f"code/{model.name}/{digest}/sourcedir.tar.gz"
        aws.s3.BucketObjectv2(
            f"{name}-source",
            bucket=bucket,
            key=key,
            source=pulumi.FileAsset(str(tarball)),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return pulumi.Output.concat("s3://", bucket, f"/{key}")
