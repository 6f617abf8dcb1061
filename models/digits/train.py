"""Train the digits CNN: one process or one per GPU under torchrun (DDP), resumable, exported.

    python train.py --channel-train DATA/train --epochs 3        # a laptop
    torchrun --nproc-per-node 2 train.py --channel-train DATA/train
    python -m training launch --model models/digits ...           # as the platform runs it

Everything about where files live, hyperparameters, SIGTERM and metrics comes from the
`training` library; what is here is the model's own loop.
"""

from __future__ import annotations

import contextlib
import math
import time

import torch
import torch.nn.functional as F
from model import ImageClassifier
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from training import distributed, runtime
from training.data import load_prepared
from training.distributed import EpochBatches
from training.errors import HyperparameterError
from training.runtime import Run


def learning_rate(step: int, hp: dict, total_steps: int) -> float:
    """Linear warm-up, then cosine decay to lr / 10; a pure function of step, so resume is exact."""
    lr, warmup = hp["lr"], hp["warmup_steps"]
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return lr / 10 + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - lr / 10)


def precision_for(choice: str, device: torch.device) -> str:
    if choice != "auto":
        return choice
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    # bf16 autocast is slower than fp32 on CPUs without bf16 units; fp32 keeps runs reproducible.
    return "fp32"


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, run: Run, device, autocast, fmt):
    """Mean cross-entropy and accuracy; each rank scores every world_size-th sample."""
    was_training = model.training
    model.eval()
    loss_sum = correct = count = 0.0
    for chunk in torch.arange(run.rank, len(y), run.world_size).split(1024):
        images = x[chunk].to(device, memory_format=fmt)
        labels = y[chunk].to(device)
        with autocast:
            logits = model(images).float()
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(dim=1) == labels).sum().item()
        count += len(labels)
    model.train(was_training)
    loss_sum, correct, count = distributed.all_sum([loss_sum, correct, count], device)
    return loss_sum / count, correct / count


def train(run: Run) -> tuple[nn.Module, dict] | None:
    """Train (resuming from the newest checkpoint): the model and its figures; None if stopped."""
    hp = run.hp
    # --- data: the train channel holds the train and validation splits ---
    data = load_prepared(run.channel("train"))
    train_x, train_y = (torch.from_numpy(a) for a in (data["train"].x, data["train"].y))
    val_x, val_y = (torch.from_numpy(a) for a in (data["validation"].x, data["validation"].y))
    batch_size, world = hp["batch_size"], run.world_size
    steps_per_epoch = len(train_y) // batch_size
    if steps_per_epoch == 0 or batch_size % world:
        raise HyperparameterError(
            f"hyperparameter 'batch_size': got {batch_size}, want a multiple of the {world} "
            f"processes and at most the {len(train_y)} training samples"
        )

    # --- device, process group, numerics ---
    device = distributed.setup(run)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)  # a resumed CPU run ends bit-identical
    torch.manual_seed(hp["seed"])
    precision = precision_for(hp["precision"], device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    fmt = torch.channels_last if hp["channels_last"] else torch.contiguous_format
    total_steps = steps_per_epoch * hp["epochs"]
    sampler = EpochBatches(len(train_y), batch_size, run.rank, world, hp["seed"])
    pairs = torch.utils.data.StackDataset(train_x, train_y)
    loader = DataLoader(pairs, sampler=sampler, batch_size=None, pin_memory=device.type == "cuda")

    # --- model, optimizer, resume ---
    model = ImageClassifier(data.sample_shape[0], data.num_classes, hp["width"])
    model = model.to(device, memory_format=fmt)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"], fused=True
    )
    step = epoch = batch_in_epoch = 0
    resumed_from = None
    checkpoint = run.checkpoints.latest(required=("model", "optimizer", "step", "epoch"))
    if checkpoint is not None:
        model.load_state_dict(checkpoint.state["model"])
        optimizer.load_state_dict(checkpoint.state["optimizer"])
        scaler.load_state_dict(checkpoint.state.get("scaler", {}))
        step, epoch = checkpoint.step, checkpoint.epoch
        batch_in_epoch = checkpoint.state["batch_in_epoch"]
        resumed_from = step
        if run.is_main:
            print(f"resumed from {checkpoint.path} at epoch {epoch}, step {step}", flush=True)

    def state() -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(), "step": step, "epoch": epoch,
                "batch_in_epoch": batch_in_epoch, "data_sha256": data.sha256}  # fmt: skip

    train_model = torch.compile(model) if hp["compile"] else model
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        train_model = DistributedDataParallel(train_model, device_ids=ids)

    # --- the loop ---
    seconds, steps_run, samples = 0.0, 0, 0
    while epoch < hp["epochs"]:
        sampler.set_position(epoch, batch_in_epoch)
        model.train()
        started = interval = time.perf_counter()
        for images, labels in loader:
            lr = learning_rate(step, hp, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            images = images.to(device, memory_format=fmt, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            with autocast:
                loss = F.cross_entropy(train_model(images), labels)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step, batch_in_epoch, steps_run = step + 1, batch_in_epoch + 1, steps_run + 1
            samples += len(labels)
            if step % hp["log_interval"] == 0:
                per_step, interval = (
                    (time.perf_counter() - interval) / hp["log_interval"],
                    time.perf_counter(),
                )
                run.log(epoch=epoch + 1, step=step, train_loss=loss.item(), lr=lr,
                        step_time_ms=per_step * 1e3, samples_per_s=batch_size / per_step)  # fmt: skip
            run.progress(step, total_steps, f"epoch {epoch + 1}/{hp['epochs']}")
            if run.stop_requested:
                run.checkpoints.save(state(), wait=True)
                run.stop()
                return None
            interval_due = hp["checkpoint_interval"] and step % hp["checkpoint_interval"] == 0
            if interval_due and batch_in_epoch < steps_per_epoch:  # the epoch end saves anyway
                run.checkpoints.save(state())
        epoch, batch_in_epoch = epoch + 1, 0
        run.checkpoints.save(state())
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - started  # checkpoints count, evaluation doesn't
        val_loss, val_acc = evaluate(model, val_x, val_y, run, device, autocast, fmt)
        run.log(epoch=epoch, step=step, validation_loss=val_loss, validation_accuracy=val_acc)
    run.checkpoints.wait()

    (samples,) = distributed.all_sum([float(samples)], device)
    figures = {
        "throughput_samples_per_s": samples / seconds if seconds else 0.0,
        "step_time_ms": 1e3 * seconds / steps_run if steps_run else 0.0,
        "steps": step, "steps_this_run": steps_run, "samples_this_run": int(samples),
        "global_batch_size": batch_size, "resumed_from_step": resumed_from,
        "train_seconds": seconds, "precision": precision, "device": device.type,
        "data_sha256": data.sha256, "torch_version": torch.__version__,
    }  # fmt: skip
    return model, figures


def main() -> None:
    with runtime.start() as run:
        result = train(run)
        distributed.teardown(run)  # the DDP wrapper went with train()'s frame
        if result is not None:
            model, figures = result
            data = load_prepared(run.channel("train"))
            validation = (data["validation"].x, data["validation"].y)
            run.export(
                model, validation=validation, labels=data.labels, quantize=run.hp["quantize"]
            )
            run.finish(**figures)


if __name__ == "__main__":
    main()
