"""Where a model's data lives in the stack's buckets: one place that pipelines, EKS runtimes and
IAM roles all read, so a role grants exactly the prefixes its jobs use.

    datasets     <model>/<channel>/             a channel, unless the stack names another prefix
                 <model>/test/                  the held-out test channel (the evaluator's only)
                 <model>/raw/                   raw input of the prepare step
                 <model>/prepared/<run>/…       what the SageMaker prepare step writes, per run
                                                (an EKS prepare job writes the channel prefixes
                                                and <model>/test/, which its volumes mount)
                 <model>/batch/input/           what Batch Transform scores, by default
    artifacts    models/<model>/                training output, evaluations, the served model
                 models/<model>/eks/<run>/      what an EKS run's nodes export (the model directory)
                 models/<model>/evaluated/<run>/  an EKS run's packed model.tar.gz and evaluation.json
                 code/<model>/                  script-mode source tarballs
                 data-capture/<model>/          captured requests and responses
                 async/<model>/                 asynchronous inference results and failures
                 batch/<model>/<run>/           Batch Transform results
                 monitoring/<model>/            drift reports
    checkpoints  <model>/<run>/                 checkpoints of one run
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.components.iam import Prefixes
from infra.config import Model


@dataclass(frozen=True)
class ChannelSource:
    """Where one input channel comes from: a datasets-bucket prefix or an external S3 URI."""

    name: str
    prefix: str | None
    uri: str | None
    input_mode: str
    given: bool = False  # named in the stack file (else: the model's prepare step makes it)


@dataclass(frozen=True)
class DataLayout:
    """A model's prefixes in the stack's buckets."""

    model: str
    channels: tuple[ChannelSource, ...]
    raw: ChannelSource | None = None  # the prepare step's `--input`, when the stack gives one

    @classmethod
    def of(cls, model: Model) -> DataLayout:
        """The layout of a stack entry: the manifest's channels, placed as the stack says."""
        configured = model.training.channels
        channels = []
        for name in model.manifest.train.channels:
            given = configured.get(name)
            prefix = given.prefix if given and given.prefix else f"{model.name}/{name}/"
            channels.append(
                ChannelSource(
                    name=name,
                    prefix=None if given and given.uri else prefix,
                    uri=given.uri if given else None,
                    input_mode=given.input_mode if given else "File",
                    given=given is not None,
                )
            )
        raw = model.training.raw_data
        return cls(
            model=model.name,
            channels=tuple(channels),
            raw=ChannelSource(
                name="raw",
                prefix=None if raw.uri else raw.prefix or f"{model.name}/raw/",
                uri=raw.uri,
                input_mode=raw.input_mode,
                given=True,
            )
            if raw is not None
            else None,
        )

    @property
    def prepared_channels(self) -> tuple[ChannelSource, ...]:
        """Channels a model's prepare step provides: those the stack file does not place."""
        return tuple(c for c in self.channels if not c.given)

    @property
    def test_prefix(self) -> str:
        return f"{self.model}/test/"

    @property
    def raw_prefix(self) -> str:
        return f"{self.model}/raw/"

    @property
    def prepared_prefix(self) -> str:
        return f"{self.model}/prepared/"

    @property
    def artifacts_prefix(self) -> str:
        return f"models/{self.model}/"

    @property
    def eks_runs_prefix(self) -> str:
        """Where each EKS run's nodes sync the exported model directory (`<run>/`)."""
        return f"models/{self.model}/eks/"

    @property
    def evaluated_prefix(self) -> str:
        """Where an EKS run's evaluate job puts the model.tar.gz it evaluated (and registers)
        and evaluation.json (`<run>/`): a prefix the training pods cannot write."""
        return f"models/{self.model}/evaluated/"

    @property
    def served_model_key(self) -> str:
        """What an endpoint without a registered version serves (`mlplatform publish`)."""
        return f"models/{self.model}/model.tar.gz"

    @property
    def code_prefix(self) -> str:
        return f"code/{self.model}/"

    @property
    def capture_prefix(self) -> str:
        return f"data-capture/{self.model}/"

    @property
    def checkpoints_prefix(self) -> str:
        return f"{self.model}/"

    @property
    def async_prefix(self) -> str:
        return f"async/{self.model}/"

    @property
    def batch_input_prefix(self) -> str:
        return f"{self.model}/batch/input/"

    @property
    def batch_output_prefix(self) -> str:
        return f"batch/{self.model}/"

    @property
    def monitoring_prefix(self) -> str:
        return f"monitoring/{self.model}/"

    @property
    def baseline_key(self) -> str:
        """The baseline of the newest model that passed its gate (the training pipeline's)."""
        return f"{self.monitoring_prefix}baseline/baseline.json"

    def training_prefixes(self, baseline: bool = False) -> Prefixes:
        """What the model's jobs (prepare, train, tune, evaluate, baseline) read and write."""
        reads = [("datasets", c.prefix) for c in self.channels if c.prefix]
        reads += [
            ("datasets", self.test_prefix),
            ("datasets", self.raw.prefix if self.raw and self.raw.prefix else self.raw_prefix),
            ("artifacts", self.code_prefix),
        ]
        return Prefixes(
            read=reads,
            write=[
                ("datasets", self.prepared_prefix),
                ("artifacts", self.artifacts_prefix),
                ("checkpoints", self.checkpoints_prefix),
                *([("artifacts", f"{self.monitoring_prefix}baseline/")] if baseline else []),
            ],
            external_read=[c.uri for c in (*self.channels, self.raw) if c and c.uri],
        )

    def hosting_prefixes(
        self,
        capture: bool,
        asynchronous: bool = False,
        batch_input: tuple[str | None, str | None] | None = None,
    ) -> Prefixes:
        """What the model's endpoint, drift checks and batch jobs read (its artifacts, batch
        input) and write (captured data and drift reports, async results, batch results), each
        only where the stack uses it."""
        read = [("artifacts", self.artifacts_prefix)]
        write = [("artifacts", self.capture_prefix)] if capture else []
        if capture:  # the drift check reads captured data and writes its reports
            write.append(("artifacts", self.monitoring_prefix))
        if asynchronous:
            write.append(("artifacts", self.async_prefix))
        external = []
        if batch_input is not None:
            prefix, uri = batch_input
            if uri:
                external.append(uri)
            else:
                read.append(("datasets", prefix or self.batch_input_prefix))
            write.append(("artifacts", self.batch_output_prefix))
        return Prefixes(read=read, write=write, external_read=external)
