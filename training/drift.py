"""Data drift: a baseline from the training data, and a check of captured requests against it.

    python -m training.drift baseline --data-dir TRAIN_CHANNEL --out baseline.json
    python -m training.drift check --baseline baseline.json --capture CAPTURE_DIR_OR_S3_URI \
        [--hours 24] [--out report.json] [--metric-namespace mlplatform/Drift --model NAME]

A sample is reduced to features: its values when it has at most MAX_FEATURES of them (tabular
data), else summary statistics (mean, standard deviation, quantiles: images, where single pixels
say little). The baseline keeps a sample of each feature from the training split; the check runs
scipy's two-sample Kolmogorov-Smirnov test per feature on the captured inputs (SageMaker data
capture's JSON lines) and calls a feature drifted below a Bonferroni-corrected p-value. The share
of drifted features is the drift score, published as a CloudWatch metric for the alarm. Model
Monitor does this for accounts that still have it; it is closed to new customers, so the platform
carries its own check, run by a scheduled pipeline in the model's image.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np

MAX_FEATURES = 32  # above this, samples are summarised (images)
BASELINE_SAMPLE = 2000  # training samples kept per feature
ALPHA = 0.01  # family-wise significance before the Bonferroni correction
EXIT_ERROR = 2


class _TestResult(Protocol):
    """scipy's KstestResult, a class built at run time, so invisible to a type checker."""

    statistic: float
    pvalue: float


class DriftError(Exception):
    """Input the check cannot use; the message says what and where."""


def features(x: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """[N, F] features of a batch of samples, and their names."""
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if flat.shape[1] <= MAX_FEATURES:
        return flat, [f"x{i}" for i in range(flat.shape[1])]
    quantiles = np.quantile(flat, [0.1, 0.5, 0.9], axis=1).T
    summary = np.column_stack([flat.mean(axis=1), flat.std(axis=1), quantiles])
    return summary, ["mean", "std", "q10", "q50", "q90"]


def baseline(x: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """What the check compares with: a fixed-size sample of each training feature."""
    values, names = features(x)
    rng = np.random.default_rng(seed)
    keep = rng.choice(len(values), size=min(BASELINE_SAMPLE, len(values)), replace=False)
    kept = values[np.sort(keep)]
    return {
        "format_version": 1,
        "samples": len(values),
        "sample_shape": list(np.asarray(x).shape[1:]),
        "features": {name: kept[:, i].round(6).tolist() for i, name in enumerate(names)},
    }


@dataclass(frozen=True)
class DriftReport:
    """Per-feature p-values and the share of features that drifted."""

    samples: int
    p_values: dict[str, float]
    threshold: float

    @property
    def drifted(self) -> list[str]:
        return sorted(n for n, p in self.p_values.items() if p < self.threshold)

    @property
    def score(self) -> float:
        return len(self.drifted) / max(len(self.p_values), 1)

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "score": self.score,
            "drifted": self.drifted,
            "threshold": self.threshold,
            "p_values": self.p_values,
        }


def check(reference: dict[str, Any], x: np.ndarray, alpha: float = ALPHA) -> DriftReport:
    """Compare captured inputs `x` with a baseline, feature by feature (KS test)."""
    from scipy.stats import ks_2samp  # the maintained two-sample test

    shape = list(np.asarray(x).shape[1:])
    if shape != reference["sample_shape"]:
        raise DriftError(
            f"captured samples have shape {shape}, the baseline {reference['sample_shape']}"
        )
    values, names = features(x)
    if list(reference["features"]) != names:
        raise DriftError("the baseline's features do not match the captured samples'")
    p_values = {
        name: float(cast(_TestResult, ks_2samp(reference["features"][name], values[:, i])).pvalue)
        for i, name in enumerate(names)
    }
    return DriftReport(samples=len(values), p_values=p_values, threshold=alpha / len(names))


def _records(line: str) -> Iterator[Any]:
    """The input samples of one data-capture record (JSON body, base64 or plain)."""
    record = json.loads(line)
    data = record["captureData"]["endpointInput"]
    text = data["data"]
    if data.get("encoding", "").upper() == "BASE64":
        text = base64.b64decode(text).decode()
    content_type = data.get("observedContentType", "application/json").split(";")[0]
    if content_type == "text/csv":
        for row in text.strip().splitlines():
            yield [float(v) for v in row.split(",")]
        return
    if content_type == "application/jsonlines":
        for row in text.strip().splitlines():
            value = json.loads(row)  # a line is one sample, or a request body
            yield from _samples(value) if isinstance(value, dict) else [value]
        return
    yield from _samples(json.loads(text))


def _samples(body: Any) -> Iterator[Any]:
    if isinstance(body, dict):
        if "instances" in body:
            yield from body["instances"]
        elif "inputs" in body and isinstance(body["inputs"], list) and body["inputs"]:
            first = body["inputs"][0]
            if isinstance(first, dict) and "data" in first:  # Open Inference Protocol v2
                data = np.asarray(first["data"], dtype=np.float64).reshape(first["shape"])
                yield from data.tolist()
            else:
                yield from body["inputs"]
        return
    if isinstance(body, list):
        yield from body


def captured_inputs(lines: Iterable[str]) -> np.ndarray:
    """Every input sample in SageMaker data-capture JSON lines, as one array."""
    samples = [s for line in lines if line.strip() for s in _records(line)]
    if not samples:
        raise DriftError("no captured requests in the window")
    return np.asarray(samples, dtype=np.float64)


def read_capture(location: str, hours: float) -> list[str]:
    """Capture lines from a local directory, or from S3 objects of the last `hours`."""
    if not location.startswith("s3://"):
        return [
            line
            for path in sorted(Path(location).rglob("*.jsonl"))
            for line in path.read_text().splitlines()
        ]
    import boto3

    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3")
    since = datetime.now(UTC) - timedelta(hours=hours)
    lines: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if item["LastModified"] >= since and item["Key"].endswith(".jsonl"):
                body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
                lines += body.splitlines()
    return lines


def publish(report: DriftReport, namespace: str, model: str) -> None:
    """The drift score as a CloudWatch metric (the stack's alarm watches it)."""
    import boto3

    boto3.client("cloudwatch").put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": "DriftScore",
                "Dimensions": [{"Name": "Model", "Value": model}],
                "Value": report.score,
                "Unit": "None",
            }
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.drift", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    base = sub.add_parser("baseline", help="features of the training split, to compare with")
    base.add_argument("--data-dir", type=Path, required=True, help="the prepared train channel")
    base.add_argument("--out", type=Path, required=True)
    chk = sub.add_parser("check", help="captured requests against the baseline")
    chk.add_argument("--baseline", required=True, help="baseline.json (local or s3://)")
    chk.add_argument("--capture", required=True, help="capture directory or s3:// prefix")
    chk.add_argument("--hours", type=float, default=24.0, help="S3: only the last N hours")
    chk.add_argument("--out", type=Path, help="where to write the report")
    chk.add_argument("--metric-namespace", help="publish DriftScore to CloudWatch")
    chk.add_argument("--model", default="", help="the metric's Model dimension")
    args = parser.parse_args(argv)
    try:
        if args.command == "baseline":
            from training.data import load_prepared

            result: dict[str, Any] = baseline(load_prepared(args.data_dir)["train"].x)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result) + "\n")
            print(f"baseline of {result['samples']} samples, {len(result['features'])} features")
            return 0
        reference = _read_json(args.baseline)
        report = check(reference, captured_inputs(read_capture(args.capture, args.hours)))
    except (DriftError, OSError, ValueError, KeyError) as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_ERROR
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    if args.metric_namespace:
        publish(report, args.metric_namespace, args.model)
    print(
        f"drift score {report.score:.3f} over {report.samples} captured samples; "
        f"drifted: {', '.join(report.drifted) or 'none'}"
    )
    return 0


def _read_json(location: str) -> dict[str, Any]:
    if location.startswith("s3://"):
        import boto3

        bucket, _, key = location.removeprefix("s3://").partition("/")
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        return json.loads(body)
    return json.loads(Path(location).read_text())


if __name__ == "__main__":
    sys.exit(main())
