"""Per-stack images: the training and serving images built from this repository and pushed to
the stack's ECR repositories, tagged with a hash of what goes into them.

The tag is computed here, in Python, from the files Docker would send (the build context minus
`.dockerignore`, plus the Dockerfile), so it is known at plan time: an unchanged context gives
the same tag, the same references and therefore no diff in anything that runs the image.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

# Overwritable tag in the same repository (the registry allows only `buildcache*` to change).
CACHE_TAG = "buildcache"
TAG_PREFIX = "ctx-"
PLATFORM = docker_build.Platform.LINUX_AMD64


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


def content_tag(context: Path, dockerfile: Path | None = None) -> str:
    """`ctx-` + 16 hex digits of a hash over the context's files (paths, permission bits,
    bytes) and the Dockerfile; independent of timestamps, checkout location and file order.

    It covers what docker-build's own context hash covers (content, path, mode), so whenever
    the provider decides to rebuild, the tag is new too: an immutable tag is never pushed twice
    with different layers (a umask that changes file modes changes both).
    """
    digest = hashlib.sha256()
    dockerfile = dockerfile or context / "Dockerfile"
    sources = [(f"ctx/{rel}", context / rel) for rel in context_files(context)]
    sources.append(("dockerfile", dockerfile))
    for label, path in sources:
        data = path.read_bytes() if path.is_file() else b""
        mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else 0
        digest.update(f"{label}\0{mode:o}\0{len(data)}\0".encode())
        digest.update(data)
    return TAG_PREFIX + digest.hexdigest()[:16]


@dataclass(frozen=True)
class StackImagesArgs:
    """Which contexts to build and where to push them."""

    contexts: dict[str, Path]  # image name -> build context (its Dockerfile inside)
    repository_urls: Mapping[str, pulumi.Input[str]]
    registry_id: pulumi.Input[str]


class StackImages(pulumi.ComponentResource):
    """One pushed image per context, referenced as `<repository>:<content tag>`."""

    refs: dict[str, pulumi.Output[str]]
    digests: dict[str, pulumi.Output[str]]
    tags: dict[str, str]

    def __init__(
        self, name: str, args: StackImagesArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("mlplatform:images:StackImages", name, None, opts)
        missing = sorted(set(args.contexts) - set(args.repository_urls))
        if missing:
            raise ValueError(
                f"no ECR repository for image(s) {missing}; have {sorted(args.repository_urls)}"
            )
        auth = aws.ecr.get_authorization_token_output(
            registry_id=args.registry_id, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        self.refs, self.digests, self.tags = {}, {}, {}
        for image, context in sorted(args.contexts.items()):
            url = pulumi.Output.from_input(args.repository_urls[image])
            tag = content_tag(context.resolve())
            cache_ref = url.apply(lambda u: f"{u}:{CACHE_TAG}")
            # Relative to the working directory, so state does not depend on the checkout path.
            location = os.path.relpath(context, Path.cwd())
            built = docker_build.Image(
                f"{name}-{image}",
                context=docker_build.BuildContextArgs(location=location),
                dockerfile=docker_build.DockerfileArgs(
                    location=os.path.join(location, "Dockerfile")
                ),
                platforms=[PLATFORM],
                # Deterministic image-config timestamps, so a rebuild of unchanged content
                # yields the same digest and the immutable tag can be pushed again.
                build_args={"SOURCE_DATE_EPOCH": "0"},
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
                        username=auth.user_name,
                        password=auth.password,
                    )
                ],
                opts=pulumi.ResourceOptions(parent=self),
            )
            # The reference is known at plan time (no diff for unchanged content) yet still
            # depends on the image resource, so nothing runs it before it is pushed.
            self.refs[image] = pulumi.Output.all(url, built.urn).apply(
                lambda v, t=tag: f"{v[0]}:{t}"
            )
            self.digests[image] = built.digest
            self.tags[image] = tag
        self.register_outputs({"refs": self.refs, "digests": self.digests})
