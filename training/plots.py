"""The training curve: loss and accuracy per epoch, drawn from a run's metrics.jsonl."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from training.errors import UserError


def curves(metrics_jsonl: Path) -> dict[str, dict[int, float]]:
    """Per key with 'loss' or 'accuracy' in its name: epoch -> mean of the values logged in it."""
    sums: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for line in metrics_jsonl.read_text().splitlines():
        record = json.loads(line) if line.strip() else {}
        epoch = record.get("epoch")
        if not isinstance(epoch, int):
            continue
        for key, value in record.items():
            if ("loss" in key or "accuracy" in key) and isinstance(value, int | float):
                sums[key][epoch].append(float(value))
    return {k: {e: sum(v) / len(v) for e, v in sorted(s.items())} for k, s in sums.items()}


def training_curve(metrics_jsonl: Path, png: Path, title: str = "") -> Path:
    """Draw loss (left) and accuracy (right) per epoch into ``png``; return its path."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a build server or in a container
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    series = curves(metrics_jsonl)
    if not series:
        raise UserError(f"{metrics_jsonl} has no per-epoch loss or accuracy to plot")
    panels = [("loss", "loss"), ("accuracy", "accuracy")]
    panels = [(t, w) for t, w in panels if any(w in k for k in series)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (label, word) in zip(axes[0], panels, strict=True):
        for key, points in sorted(series.items()):
            if word in key:
                ax.plot(list(points), list(points.values()), marker="o", label=key)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png
