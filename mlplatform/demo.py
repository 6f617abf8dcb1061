"""`mlplatform demo`: the whole loop on one machine with no cloud account.

Plan the stack offline (resources, policies, cost), then `mlplatform run` its default model (the
stack's first): prepare, train, export, evaluate, serve with the platform's server on localhost
and predict the model's example request. Every step runs through the entry points the container
images use (`python -m training ...`, `python -m serving ...`), so what works here works there.
"""

from __future__ import annotations

from pathlib import Path

from infra.stackfile import STACKS_DIR, load_stack_file, stack_file
from mlplatform.local_model import RunError, find_model
from mlplatform.run import STEPS, Progress, run_model


def default_model(stack: str, stacks_dir: Path = STACKS_DIR) -> str:
    """The stack's default model: the first of its `mlplatform:models`."""
    config, _ = load_stack_file(stack_file(stack, stacks_dir))
    if not config.models:
        raise RunError(f"stack {stack} has no models (mlplatform:models) to run")
    return config.models[0].name


def run_demo(
    workdir: Path, stack: str = "dev", epochs: int | None = None, sample: int | None = None
) -> int:
    """Plan, then run the stack's default model; returns a process exit code."""
    from mlplatform import terminal
    from mlplatform.plan import plan_stack
    from mlplatform.progress import spinner
    from mlplatform.report import preview

    progress = Progress(total=STEPS + 1)
    progress.step(f"Offline plan of stack '{stack}', policy check and cost (no AWS account needed)")
    with spinner() as say:
        plan = plan_stack(stack_file(stack, STACKS_DIR), stack, progress=say)
        checked = preview(plan, progress=say)
    out = terminal.console()
    terminal.show(out, terminal.summary(plan))
    terminal.print_checks(checked, out)

    name = default_model(stack)
    print(f"\nthe stack's default model: {name} (the first of its mlplatform:models)")
    model = find_model(name, stack, epochs)
    run_model(model, workdir, sample=sample, progress=progress)
    return 0
