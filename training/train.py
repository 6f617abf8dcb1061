"""The training loop, top to bottom: set-up, resume, train with checkpoints, evaluate, export.

Runs as one process or as one of N under torchrun (DDP: NCCL on GPUs, gloo on CPUs). Where
files live and which rank this is come from training.environment; what to train comes from
training.config.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import signal
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from training.checkpoint import CheckpointWriter, load_latest
from training.config import HyperparameterError, TrainConfig
from training.data import EpochBatches, batches_per_epoch, load_dataset
from training.environment import RunEnvironment, write_failure
from training.export import evaluate, export_model
from training.metrics import ProgressBar, format_metrics
from training.model import ImageClassifier

log = logging.getLogger(__name__)

EXIT_STOPPED = 128 + signal.SIGTERM  # the shell's code for "ended by SIGTERM"
STOP_SYNC_EVERY = 10  # steps between agreeing on a stop across ranks (a host sync on GPUs)


class StopRequested:
    """Set by SIGTERM (spot interruption, StopTrainingJob, pod deletion); checked between steps.

    SageMaker and Kubernetes both send SIGKILL some time after SIGTERM (120 s and the pod's
    grace period), so the handler only flags and the loop saves at the next step boundary.
    """

    def __init__(self) -> None:
        self.signum = 0
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.signum = signum

    def agreed(self, step: int, world_size: int, device: torch.device) -> bool:
        """Whether to stop now; all ranks must agree or the ones that go on hang in all-reduce."""
        if world_size == 1:
            return bool(self.signum)
        if step % STOP_SYNC_EVERY:
            return False
        flag = torch.tensor([1 if self.signum else 0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


def learning_rate(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """Linear warm-up, then cosine decay to lr / 10; a pure function of step, so resume is exact."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    min_lr = cfg.lr / 10
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - min_lr)


def _precision(choice: str, device: torch.device) -> str:
    if choice != "auto":
        return choice
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    # bf16 autocast is slower than fp32 on CPUs without bf16 units; fp32 keeps runs reproducible.
    return "fp32"


def train(run: RunEnvironment, cfg: TrainConfig) -> int:
    """Train, checkpoint, evaluate and (on rank 0) export; return the process exit code."""
    # --- devices, process group, numerics ---
    distributed = run.world_size > 1
    if torch.cuda.is_available():
        device = torch.device("cuda", run.local_rank)
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        device = torch.device("cpu")
        torch.use_deterministic_algorithms(True)
    if distributed:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    main_rank = run.is_main
    torch.manual_seed(cfg.seed)
    precision = _precision(cfg.precision, device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format

    # --- data ---
    data = load_dataset(run.data_dir)
    steps_per_epoch = batches_per_epoch(len(data.train), cfg.batch_size)
    if steps_per_epoch == 0 or cfg.batch_size % run.world_size:
        raise HyperparameterError(
            f"hyperparameter 'batch_size': got {cfg.batch_size}, want a multiple of the "
            f"{run.world_size} processes and at most the {len(data.train)} training samples "
            f"in {run.data_dir}"
        )
    total_steps = steps_per_epoch * cfg.epochs
    sampler = EpochBatches(len(data.train), cfg.batch_size, run.rank, run.world_size, cfg.seed)
    loader = DataLoader(
        data.train,
        sampler=sampler,
        batch_size=None,
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=cfg.num_workers > 0,
    )

    # --- model and optimizer ---
    model = ImageClassifier(data.image_shape[0], data.num_classes, cfg.width)
    model = model.to(device, memory_format=memory_format)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        fused=device.type in ("cuda", "cpu"),
    )

    # --- resume from the newest checkpoint that loads (rank 0 reads, everyone receives) ---
    step, epoch, batch_in_epoch, resumed_from = 0, 0, 0, None
    found = [load_latest(run.checkpoint_dir) if main_rank else None]
    if distributed:
        dist.broadcast_object_list(found, src=0)
    if found[0] is not None:
        state, path = found[0]
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise ValueError(
                f"checkpoint {path} does not fit this model ({err}); a different "
                "model needs its own checkpoint directory"
            ) from None
        scaler.load_state_dict(state.get("scaler", {}))
        step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        resumed_from = step
        if state.get("data_sha256") != data.sha256:
            log.warning(
                "checkpoint %s was trained on data %s, this run has %s",
                path,
                str(state.get("data_sha256"))[:12],
                data.sha256[:12],
            )
        if main_rank:
            print(f"resumed from {path} at epoch {epoch}, step {step}", flush=True)

    writer = CheckpointWriter(run.checkpoint_dir, cfg.keep_checkpoints)

    def checkpoint(wait: bool = False) -> None:
        if main_rank:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "step": step,
                "epoch": epoch,
                "batch_in_epoch": batch_in_epoch,
                "config": cfg.to_dict(),
                "data_sha256": data.sha256,
            }
            writer.save(state, wait=wait)

    train_model = torch.compile(model) if cfg.compile else model
    if distributed:
        train_model = DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None
        )

    # --- the loop ---
    stop = StopRequested()
    bar = ProgressBar(total_steps, enabled=None if main_rank else False)
    train_seconds, steps_run, samples = 0.0, 0, 0  # this run's; samples summed across ranks
    test_loss = test_accuracy = float("nan")
    stopped = False
    while epoch < cfg.epochs and not stopped:
        sampler.set_position(epoch, batch_in_epoch)
        model.train()
        started = interval_start = time.perf_counter()
        for images, labels in loader:
            lr = learning_rate(step, cfg, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            images = images.to(device, memory_format=memory_format, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            with autocast:
                loss = F.cross_entropy(train_model(images), labels)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step, batch_in_epoch, steps_run = step + 1, batch_in_epoch + 1, steps_run + 1
            samples += len(labels)

            if step % cfg.log_interval == 0 and main_rank:
                loss_value = loss.item()  # the only host sync in the step, once per interval
                now = time.perf_counter()
                per_step = (now - interval_start) / cfg.log_interval
                interval_start = now
                bar.clear()
                print(
                    format_metrics(
                        epoch=epoch + 1,
                        step=step,
                        train_loss=loss_value,
                        lr=lr,
                        step_time_ms=per_step * 1e3,
                        samples_per_s=cfg.batch_size / per_step,
                    ),
                    flush=True,
                )
            bar.update(step, f"epoch {epoch + 1}/{cfg.epochs}")
            if stop.agreed(step, run.world_size, device):
                checkpoint(wait=True)
                stopped = True
                break
            if (
                cfg.checkpoint_interval
                and step % cfg.checkpoint_interval == 0
                and batch_in_epoch < steps_per_epoch
            ):
                checkpoint()
        if stopped:
            break
        epoch, batch_in_epoch = epoch + 1, 0
        checkpoint()
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_seconds += time.perf_counter() - started  # checkpoints count, evaluation doesn't

        test_loss, test_accuracy = evaluate(
            model, data.test, device, run.rank, run.world_size, autocast, memory_format
        )
        if main_rank:
            bar.clear()
            print(
                format_metrics(
                    epoch=epoch, step=step, test_loss=test_loss, test_accuracy=test_accuracy
                ),
                flush=True,
            )
    bar.close()
    writer.wait()

    if stopped and main_rank:
        reason = (
            f"stopped by signal {stop.signum} at step {step}; checkpoint saved to "
            f"{run.checkpoint_dir}, a restarted job resumes from it"
        )
        print(reason, flush=True)
        write_failure(run, reason)

    # --- evaluate what will be served, export it, write metrics.json ---
    if distributed and not stopped:
        total = torch.tensor([samples], dtype=torch.int64, device=device)
        dist.all_reduce(total)
        samples = int(total.item())
    if main_rank and not stopped:
        figures = export_model(model, data, run.model_dir, cfg.quantize)
        throughput = samples / train_seconds if train_seconds else 0.0
        metrics = {
            **figures,
            "throughput_samples_per_s": throughput,
            "step_time_ms": 1e3 * train_seconds / steps_run if steps_run else 0.0,
            "data_sha256": data.sha256,
            "dataset": data.name,
            "epochs": cfg.epochs,
            "steps": step,
            "steps_this_run": steps_run,
            "samples_this_run": samples,
            "global_batch_size": cfg.batch_size,
            "world_size": run.world_size,
            "resumed_from_step": resumed_from,
            "train_seconds": train_seconds,
            "precision": precision,
            "device": device.type,
            # None, not NaN, when this run only exported: strict JSON readers reject NaN.
            "last_epoch_test_accuracy": None if math.isnan(test_accuracy) else test_accuracy,
            "last_epoch_test_loss": None if math.isnan(test_loss) else test_loss,
            "hyperparameters": cfg.to_dict(),
            "torch_version": torch.__version__,
        }
        (run.model_dir / "metrics.json").write_text(
            json.dumps(metrics, indent=2, allow_nan=False) + "\n"
        )
        extra = {}
        if "int8_accuracy" in figures:
            extra = {
                "int8_test_accuracy": figures["int8_accuracy"],
                "int8_accuracy_delta": figures["int8_accuracy_delta"],
            }
        print(
            format_metrics(
                test_loss=figures["loss"],
                test_accuracy=figures["accuracy"],
                samples_per_s=throughput,
                **extra,
            ),
            flush=True,
        )
        print(f"model written to {run.model_dir}", flush=True)

    if distributed:
        dist.barrier()  # nobody exits (and is torn down by torchrun) before rank 0 is done
        # DDP's reducer must not hold the last reference to the process group: its destructor
        # joins gloo's worker thread while holding the GIL, and that thread may need the GIL
        # to free its last tensors (a hang at exit seen with torch 2.13 on gloo).
        del train_model
        gc.collect()
        dist.destroy_process_group()
    return EXIT_STOPPED if stopped else 0
