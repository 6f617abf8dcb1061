"""Stack-wide tags: one transformation tags every taggable AWS resource the program declares."""

from __future__ import annotations

import inspect
from functools import cache

import pulumi


@cache
def _is_taggable(resource_type: type) -> bool:
    init = getattr(resource_type, "_internal_init", None)
    return init is not None and "tags" in inspect.signature(init).parameters


def register_stack_tags(tags: dict[str, str]) -> None:
    """Merge `tags` into the `tags` input of every AWS resource that accepts one.

    A stack transformation (rather than the provider's default_tags) keeps the tags in each
    resource's own inputs, where policies, the offline plan and cost allocation all see them.
    Tags a resource sets itself (e.g. `Name`) win over the stack's.
    """

    def add_tags(
        args: pulumi.ResourceTransformationArgs,
    ) -> pulumi.ResourceTransformationResult | None:
        if not args.type_.startswith("aws:") or not _is_taggable(type(args.resource)):
            return None
        own = args.props.get("tags") or {}
        merged = pulumi.Output.from_input(own).apply(lambda own_tags: {**tags, **(own_tags or {})})
        return pulumi.ResourceTransformationResult({**args.props, "tags": merged}, args.opts)

    pulumi.runtime.register_stack_transformation(add_tags)
