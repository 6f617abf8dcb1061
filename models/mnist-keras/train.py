"""Train a small Keras CNN on MNIST-format data; export SavedModel, ONNX and int8 ONNX.

    python train.py --channel-train DATA/train --epochs 5

Keras' own BackupAndRestore keeps the resume state in the checkpoint directory (SageMaker syncs
it to S3): a job stopped by SIGTERM or a spot reclaim restarts from its last finished epoch.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up notes

import keras

from training import runtime
from training.data import load_prepared
from training.runtime import Run


def build(shape: tuple[int, ...], classes: int, filters: int) -> keras.Model:
    """Two conv/pool blocks and a softmax head: ~99% on MNIST in a few epochs."""
    return keras.Sequential(
        [
            keras.Input(shape, name="input"),
            keras.layers.Conv2D(filters, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(2 * filters, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.25),
            keras.layers.Dense(classes, activation="softmax", name="probabilities"),
        ]
    )


class Report(keras.callbacks.Callback):
    """Epoch metrics to the run's log; a SIGTERM ends training after the current batch."""

    def __init__(self, run: Run):
        super().__init__()
        self.run = run

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.run.stop_requested:
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.run.stop_requested:
            return  # a partial epoch: its figures would mislead
        logs = logs or {}
        self.run.log(
            epoch=epoch + 1,
            train_loss=logs.get("loss"),
            train_accuracy=logs.get("accuracy"),
            validation_loss=logs.get("val_loss"),
            validation_accuracy=logs.get("val_accuracy"),
        )


class EpochBackup(keras.callbacks.BackupAndRestore):
    """Keras' backup of the last finished epoch, in the run's checkpoint directory.

    Kept after training ends (Keras deletes it by default, also when a SIGTERM stopped the
    fit), and not written for an epoch a SIGTERM cut short: a restarted job redoes that epoch,
    or only exports if training had finished.
    """

    def __init__(self, run: Run):
        super().__init__(str(run.checkpoint_dir / "keras-backup"), delete_checkpoint=False)
        self.run = run

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self.run.stop_requested:
            super().on_epoch_end(epoch, logs)


def main() -> None:
    with runtime.start() as run:
        hp = run.hp
        keras.utils.set_random_seed(hp["seed"])
        data = load_prepared(run.channel("train"))
        train, validation = data["train"], data["validation"]

        model = build(data.sample_shape, data.num_classes, hp["filters"])
        model.compile(
            optimizer=keras.optimizers.Adam(hp["lr"]),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        backup = EpochBackup(run)
        model.fit(
            train.x,
            train.y,
            epochs=hp["epochs"],
            batch_size=hp["batch_size"],
            validation_data=(validation.x, validation.y),
            callbacks=[backup, Report(run)],
            verbose=0,
        )
        if run.stop_requested:
            run.stop()  # the backup of the last finished epoch is what a restart resumes
            return
        loss, accuracy = model.evaluate(validation.x, validation.y, verbose=0)
        run.export(
            model,
            validation=(validation.x, validation.y),
            labels=data.labels,
            quantize=hp["quantize"],
        )
        run.finish(
            validation_loss=loss,
            validation_accuracy=accuracy,
            data_sha256=data.sha256,
            dataset=data.name,
            keras_version=keras.__version__,
        )


if __name__ == "__main__":
    main()
