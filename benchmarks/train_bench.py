"""Training benchmark: the platform loop against a bare PyTorch loop, side by side in one run.

Both train training.model.ImageClassifier on the same prepared dataset held in memory, with the
same global batch, fused AdamW, memory format, precision and thread count, and both count the
same steps. They run alternately in one process, R rounds each; the table shows the medians,
their ratio (platform / bare), and the median of each round's back-to-back ratio ("paired").

What the platform loop (training.train.train) adds and pays for here: the DataLoader over the
resumable sampler, the learning-rate schedule, the SIGTERM check, metric lines, and checkpoints
(every checkpoint_interval steps and at each epoch end, written and fsynced). Not counted for
either: per-epoch evaluation and the export, which the bare loop does not do.

    .venv/bin/python benchmarks/train_bench.py                 # digits and a synthetic set
    .venv/bin/python benchmarks/train_bench.py --dataset synthetic --samples 32768 --rounds 7
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from training.config import TrainConfig
from training.data import Dataset, load_dataset, prepare_digits, prepare_synthetic
from training.environment import RunEnvironment
from training.model import ImageClassifier
from training.train import train


def platform_loop(data_dir: Path, work: Path, cfg: TrainConfig) -> tuple[float, float]:
    """(samples/s, ms/step) as the platform loop reports them in metrics.json."""
    run = RunEnvironment(
        platform="local",
        data_dir=data_dir,
        model_dir=work / "model",
        checkpoint_dir=work / "checkpoints",  # fresh each round: a resume would skip the work
        output_dir=work / "output",
    )
    with contextlib.redirect_stdout(io.StringIO()):  # the metric lines cost what a log pipe costs
        code = train(run, cfg)
    if code:
        raise RuntimeError(f"platform loop exited {code}")
    metrics = json.loads((run.model_dir / "metrics.json").read_text())
    return metrics["throughput_samples_per_s"], metrics["step_time_ms"]


def bare_loop(data: Dataset, cfg: TrainConfig) -> tuple[float, float]:
    """The same training as a plain PyTorch loop: shuffle, slice, forward, backward, step."""
    torch.manual_seed(cfg.seed)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = ImageClassifier(data.image_shape[0], data.num_classes, cfg.width)
    model = model.to(memory_format=memory_format).train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True
    )
    images, labels = data.train.images, data.train.labels
    steps_per_epoch = len(labels) // cfg.batch_size
    start = time.perf_counter()
    for _ in range(cfg.epochs):
        order = torch.randperm(len(labels))
        for i in range(steps_per_epoch):
            batch = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            x = images[batch].contiguous(memory_format=memory_format)
            loss = F.cross_entropy(model(x), labels[batch])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start
    steps = steps_per_epoch * cfg.epochs
    return steps * cfg.batch_size / seconds, 1e3 * seconds / steps


def compare(name: str, data_dir: Path, cfg: TrainConfig, rounds: int) -> dict:
    """Alternate the two loops (bare first on odd rounds) so drift in machine load hits both."""
    data = load_dataset(data_dir)
    platform_loop(data_dir, Path(tempfile.mkdtemp()), replace(cfg, epochs=1))  # warm-up
    bare_loop(data, replace(cfg, epochs=1))
    results: dict[str, list[tuple[float, float]]] = {"platform": [], "bare": []}
    for i in range(rounds):
        order = ["bare", "platform"] if i % 2 else ["platform", "bare"]
        for which in order:
            if which == "platform":
                work = Path(tempfile.mkdtemp(prefix="train-bench-"))
                results["platform"].append(platform_loop(data_dir, work, cfg))
            else:
                results["bare"].append(bare_loop(data, cfg))
    row = {
        "dataset": name,
        "train_samples": len(data.train),
        "shape": list(data.image_shape),
        "batch_size": cfg.batch_size,
        "epochs": cfg.epochs,
        "rounds": rounds,
    }
    for which, runs in results.items():
        row[which] = {
            "samples_per_s_median": statistics.median(r[0] for r in runs),
            "samples_per_s_min": min(r[0] for r in runs),
            "samples_per_s_max": max(r[0] for r in runs),
            "step_ms_median": statistics.median(r[1] for r in runs),
        }
    row["ratio"] = row["platform"]["samples_per_s_median"] / row["bare"]["samples_per_s_median"]
    # Each round's two runs are back to back: their ratio is robust to load that drifts
    # between rounds on a shared machine.
    paired = [p[0] / b[0] for p, b in zip(results["platform"], results["bare"], strict=True)]
    row["paired_ratio_median"] = statistics.median(paired)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("digits", "synthetic", "both"), default="both")
    parser.add_argument("--samples", type=int, default=16384, help="synthetic: images in total")
    parser.add_argument("--image-size", type=int, default=8, help="synthetic: height and width")
    parser.add_argument("--synthetic-epochs", type=int, default=1, help="synthetic: epochs")
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    parser.add_argument("--batch-size", type=int, default=TrainConfig().batch_size)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # Same settings for both loops; no int8 export, which is not part of the timed region anyway.
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, quantize=False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.dataset in ("digits", "both"):
            prepare_digits(root / "digits")
            rows.append(compare("digits", root / "digits", cfg, args.rounds))
        if args.dataset in ("synthetic", "both"):
            prepare_synthetic(root / "synthetic", samples=args.samples, image_size=args.image_size)
            synthetic_cfg = replace(cfg, epochs=args.synthetic_epochs)
            rows.append(compare("synthetic", root / "synthetic", synthetic_cfg, args.rounds))

    print(
        f"torch {torch.__version__}, {args.threads} threads, device cpu, "
        f"{args.rounds} rounds, medians"
    )
    print(
        f"{'dataset':<10} {'shape':<10} {'train':>6} {'bare samples/s':>15} "
        f"{'platform samples/s':>19} {'bare ms/step':>13} {'platform ms/step':>17} {'ratio':>6} "
        f"{'paired':>6}"
    )
    for row in rows:
        shape = "x".join(map(str, row["shape"]))
        print(
            f"{row['dataset']:<10} {shape:<10} {row['train_samples']:>6} "
            f"{row['bare']['samples_per_s_median']:>15.0f} "
            f"{row['platform']['samples_per_s_median']:>19.0f} "
            f"{row['bare']['step_ms_median']:>13.3f} {row['platform']['step_ms_median']:>17.3f} "
            f"{row['ratio']:>6.3f} {row['paired_ratio_median']:>6.3f}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
