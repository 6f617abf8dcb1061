"""One command for a GPU machine (H100/H200): the platform's training loop and model server on
CUDA, each against its bare baseline, with the card's name and the ratios against the targets.

    .venv/bin/python benchmarks/gpu_check.py              # on the GPU machine, a few minutes
    .venv/bin/python benchmarks/gpu_check.py --smoke      # anywhere, CPU, tiny sizes, seconds

Training: a ResNet-50-shaped bottleneck network (plain torch.nn: stages of 3, 4, 6 and 3
bottleneck blocks, synthetic 224x224 images) in bf16 autocast and channels_last, compiled with
torch.compile. The bare loop is the textbook step; the platform's loop is the same step plus what
the platform adds to it: the background checkpoint writer (training.checkpoint) every
--checkpoint-every steps and a logged loss every --log-every steps. The two alternate in rounds so
drift in clocks and load hits both; target: the platform at >= 95% of the bare loop's images/s.

Serving: the serving benchmark's digits model (TorchScript and ONNX variants) behind our server on
CUDA at concurrency 1 and 64, beside the raw forward pass on the same device; ONNX on CUDA needs
onnxruntime-gpu, and says so if it is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # training and serving, when not installed

from serve_bench import measure, peers, print_row, start_all  # noqa: E402
from serve_raw import export_digits_model, raw_rows  # noqa: E402

from training.checkpoint import CheckpointWriter  # noqa: E402


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), batch norm after each, identity or projected shortcut."""

    def __init__(self, inplanes: int, planes: int, stride: int) -> None:
        super().__init__()
        out = planes * 4
        self.body = nn.Sequential(
            nn.Conv2d(inplanes, planes, 1, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
            nn.Conv2d(planes, out, 1, bias=False),
            nn.BatchNorm2d(out),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and inplanes == out
            else nn.Sequential(
                nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def resnet50_like(
    width: int = 64, classes: int = 1000, blocks: tuple[int, ...] = (3, 4, 6, 3)
) -> nn.Module:
    """ResNet-50's shape (25.6 M parameters at width 64) from plain torch.nn modules."""
    layers: list[nn.Module] = [
        nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, padding=1),
    ]
    inplanes = width
    for stage, count in enumerate(blocks):
        planes = width * 2**stage
        for i in range(count):
            layers.append(Bottleneck(inplanes, planes, stride=2 if stage and i == 0 else 1))
            inplanes = planes * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(inplanes, classes)]
    return nn.Sequential(*layers)


def training_check(args: argparse.Namespace, device: torch.device, workdir: Path) -> dict:
    """Images/s of the bare and the platform's loop, alternating rounds; the median ratio."""
    torch.manual_seed(0)
    blocks = (1, 1, 1, 1) if args.smoke else (3, 4, 6, 3)  # smoke: a shorter graph to trace
    model = resnet50_like(args.width, blocks=blocks).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    # The CPU smoke run only exercises the path: inductor would compile for minutes on 2 cores.
    step_model = torch.compile(model, backend="eager" if args.smoke else "inductor")
    x = torch.randn(args.batch, 3, args.image, args.image, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (args.batch,), device=device)
    # bf16 on the GPU; a CPU without bf16 units runs bf16 convolutions far slower than fp32.
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    writer = CheckpointWriter(workdir / "checkpoints", keep=2)

    def step() -> torch.Tensor:
        with autocast:
            loss = nn.functional.cross_entropy(step_model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    def bare(steps: int) -> None:
        for _ in range(steps):
            step()

    def platform(steps: int, first: int) -> None:
        for i in range(first, first + steps):
            loss = step()
            if (i + 1) % args.log_every == 0:
                print(f"metric: step={i + 1} train_loss={loss.item():.4f}", file=sys.stderr)
            if (i + 1) % args.checkpoint_every == 0:
                state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
                writer.save(
                    {**state, "step": i + 1, "epoch": 0, "batch_in_epoch": i + 1, "config": {}}
                )

    def timed(run, *extra: int) -> float:
        sync(device)
        started = time.perf_counter()
        run(args.steps, *extra)
        sync(device)
        return args.batch * args.steps / (time.perf_counter() - started)

    bare(args.warmup)  # compiles and warms the caches for both: it is the same step
    done = 0
    ratios, bare_rates, platform_rates = [], [], []
    for _ in range(args.rounds):
        bare_rates.append(timed(bare))
        platform_rates.append(timed(platform, done))
        done += args.steps
        ratios.append(platform_rates[-1] / bare_rates[-1])
    writer.wait()
    return {
        "bare_images_per_s": statistics.median(bare_rates),
        "platform_images_per_s": statistics.median(platform_rates),
        "ratio": statistics.median(ratios),
    }


def serving_check(args: argparse.Namespace, device: str, workdir: Path) -> dict:
    """Our server on `device`, TorchScript and ONNX, at concurrency 1 and 64, and the raw rows."""
    model_dir = args.model_dir or export_digits_model(workdir / "model")
    raw = raw_rows(model_dir, threads=1, device=device, scale=0.01 if args.smoke else 1.0)
    bodies = {"invocations": workdir / "body.json", "v2": workdir / "v2.json"}
    bodies["invocations"].write_text(json.dumps({"inputs": [[[[0.5] * 8] * 8]]}))
    levels = [1, 4] if args.smoke else [1, 64]
    rows: list[dict] = []
    for peer in peers(model_dir, 1, ["mlplatform", "mlplatform-onnx"], device=device):
        with contextlib.ExitStack() as stack:
            try:
                start_all([peer], stack, workdir)
            except RuntimeError as exc:  # onnxruntime without its CUDA provider: named, not fatal
                print(f"{peer.name} on {device}: not measured: {exc}", file=sys.stderr)
                continue
            for concurrency in levels:
                rows.append(measure(peer, bodies[peer.body], concurrency, args.requests))
                print_row(rows[-1])
    return {"raw": raw, "runs": rows, "levels": levels}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="CPU, tiny sizes: checks the script runs")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--image", type=int, default=224)
    p.add_argument("--width", type=int, default=64, help="ResNet-50's is 64")
    p.add_argument("--steps", type=int, default=30, help="timed steps per round and loop")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=15)
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--requests", type=int, default=3000, help="per serving level")
    p.add_argument("--model-dir", type=Path, help="served model (default: export the digits one)")
    p.add_argument("--json", type=Path, help="also write all figures here")
    args = p.parse_args()
    if args.smoke:
        sizes = dict(batch=4, image=32, width=8, steps=2, rounds=2, warmup=3, requests=20)
        vars(args).update(sizes, checkpoint_every=2, log_every=2)
    cuda = torch.cuda.is_available() and not args.smoke
    device = torch.device("cuda" if cuda else "cpu")
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
    card = torch.cuda.get_device_name() if cuda else "cpu"
    print(f"device: {card}; torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        training = training_check(args, device, Path(tmp))
        verdict = "met" if training["ratio"] >= 0.95 else "MISSED"
        print(
            f"training: bare {training['bare_images_per_s']:.0f} img/s, platform "
            f"{training['platform_images_per_s']:.0f} img/s, ratio {training['ratio']:.3f} "
            f"(target >= 0.95: {'not judged on smoke sizes' if args.smoke else verdict})",
            flush=True,
        )
        serving = serving_check(args, device.type, Path(tmp))
    by = {(r["server"], r["concurrency"]): r for r in serving["runs"] if r["p50_ms"] is not None}
    forward1 = next(r for r in serving["raw"] if r["row"] == "torchscript" and r["batch"] == 1)
    low, high = serving["levels"]
    for name in ("mlplatform", "mlplatform-onnx"):
        if (name, low) in by and (name, high) in by:
            one, many = by[(name, low)], by[(name, high)]
            print(
                f"serving {name} on {device.type}: c={low} p50 {one['p50_ms']:.3f} ms "
                f"({one['p50_ms'] - forward1['p50_ms']:.3f} ms over the raw forward), "
                f"c={high} {many['throughput_rps']:.0f} req/s "
                f"({many['throughput_rps'] / one['throughput_rps']:.1f}x c={low})"
            )
    if args.json:
        args.json.write_text(
            json.dumps({"device": card, "training": training, **serving}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
