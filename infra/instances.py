"""EC2 instance facts (vCPUs, memory, GPUs, EFA, instance storage) for config checks, node labels,
cost and SageMaker's volume-key rule.

The facts come from `infra/instance_types.tsv`, a table generated from the DescribeInstanceTypes
data that moto ships and its maintainers refresh from AWS (`moto/ec2/resources/
instance_types.json.gz`). The table keeps moto out of the program's run-time dependencies;
`tests/infra/test_gpu_pools_instance_facts.py` checks it still matches moto's data. Regenerate
it with `python -m infra.instances` after upgrading moto.
"""

from __future__ import annotations

import csv
import datetime
import gzip
import json
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("instance_types.tsv")
COLUMNS = (
    "instance_type",
    "vcpus",
    "memory_mib",
    "architectures",
    "gpu_manufacturer",
    "gpu_model",
    "gpu_count",
    "gpu_partition",
    "gpu_memory_mib",
    "efa_interfaces",
    "instance_storage_gb",
)


@dataclass(frozen=True)
class InstanceFacts:
    """What the platform needs to know about one instance type."""

    instance_type: str
    vcpus: int
    memory_mib: int
    architectures: tuple[str, ...]
    gpu_manufacturer: str | None
    gpu_model: str | None
    gpu_count: int
    """Whole GPUs; 0 for instance types that get a fraction of one (see `gpu_partition`)."""
    gpu_partition: float
    """Share of one GPU per instance: 1.0 for whole GPUs, e.g. 0.125 for g6f.large."""
    gpu_memory_mib: int
    """Memory of one GPU (or of the GPU fraction)."""
    efa_interfaces: int
    """Maximum EFA interfaces; 0 where the type has no EFA."""
    instance_storage_gb: int
    """Total instance-store (local disk) size, AWS's `TotalSizeInGB`; 0 for EBS-only types."""

    @property
    def family(self) -> str:
        return self.instance_type.split(".", 1)[0]

    @property
    def architecture(self) -> str:
        """`arm64` or `x86_64` (the first the type supports, as EKS AMI types need one)."""
        return "arm64" if "arm64" in self.architectures else self.architectures[0]


def _facts_from_row(row: dict[str, str]) -> InstanceFacts:
    return InstanceFacts(
        instance_type=row["instance_type"],
        vcpus=int(row["vcpus"]),
        memory_mib=int(row["memory_mib"]),
        architectures=tuple(row["architectures"].split(",")),
        gpu_manufacturer=row["gpu_manufacturer"] or None,
        gpu_model=row["gpu_model"] or None,
        gpu_count=int(row["gpu_count"] or 0),
        gpu_partition=float(row["gpu_partition"] or 0),
        gpu_memory_mib=int(row["gpu_memory_mib"] or 0),
        efa_interfaces=int(row["efa_interfaces"] or 0),
        instance_storage_gb=int(row["instance_storage_gb"] or 0),
    )


@cache
def table() -> dict[str, InstanceFacts]:
    """Every instance type in the table, by name."""
    with TABLE.open(newline="") as handle:
        rows = csv.DictReader((line for line in handle if not line.startswith("#")), delimiter="\t")
        return {row["instance_type"]: _facts_from_row(row) for row in rows}


def facts(instance_type: str) -> InstanceFacts | None:
    """The facts of one instance type, or None if the table does not know it."""
    return table().get(instance_type)


def gpu_info(instance_type: str) -> tuple[str, int, int] | None:
    """(GPU model, whole GPUs, memory per GPU in MiB), or None for a type without GPUs."""
    found = facts(instance_type)
    if found is None or found.gpu_model is None:
        return None
    return found.gpu_model, found.gpu_count, found.gpu_memory_mib


def efa_supported(instance_type: str) -> bool:
    found = facts(instance_type)
    return bool(found and found.efa_interfaces)


def vcpus(instance_type: str) -> int | None:
    found = facts(instance_type)
    return found.vcpus if found else None


def memory_mib(instance_type: str) -> int | None:
    found = facts(instance_type)
    return found.memory_mib if found else None


class UnknownInstanceType(ValueError):
    """An instance type the table has no facts for."""


def has_instance_storage(instance_type: str) -> bool:
    """True for types with instance-store volumes (g4dn, g5, p4d, m5d; NVMe on every SageMaker type).

    Takes EC2 names and SageMaker `ml.` names: a SageMaker type runs on the EC2 type of the same
    name. SageMaker refuses a volume KMS key on these types (their disks are encrypted by the
    instance's hardware) and needs one on EBS-backed types to use the stack's key.

    Raises `UnknownInstanceType` for a type the table lacks rather than guess: guessing "no
    storage" sets a key SageMaker refuses, guessing "storage" leaves EBS volumes off the stack's
    key. Some SageMaker types have no EC2 twin in moto's data (in moto 5.2.5 and botocore 1.44:
    ml.p2.*, ml.p3.{2,8,16}xlarge, ml.dl1.24xlarge, ml.p6e-gb200.36xlarge; pinned by
    tests/infra/test_gpu_pools_instance_facts.py), so stack configs cannot use them.
    """
    name = instance_type.removeprefix("ml.")
    found = facts(name)
    if found is None:
        raise UnknownInstanceType(
            f"no instance facts for {name} in {TABLE.name} (AWS DescribeInstanceTypes data via "
            f"moto), so whether {instance_type} has instance storage (which decides if SageMaker "
            "takes a volume KMS key) is unknown; choose another type, or regenerate the table "
            "with `python -m infra.instances` after upgrading moto"
        )
    return found.instance_storage_gb > 0


# --- Regenerating the table from moto's data (a dev-time step; moto is a dev dependency) -----


def moto_data() -> tuple[dict[str, Any], str]:
    """moto's DescribeInstanceTypes data and moto's version."""
    import moto

    path = Path(moto.__file__).parent / "ec2" / "resources" / "instance_types.json.gz"
    with gzip.open(path) as handle:
        return json.load(handle), moto.__version__


def rows_from_moto(data: dict[str, Any]) -> list[dict[str, str]]:
    """One table row per instance type, in name order."""
    rows = []
    for name in sorted(data):
        item = data[name]
        gpus = (item.get("GpuInfo") or {}).get("Gpus") or [{}]
        gpu = gpus[0]
        network = item.get("NetworkInfo", {})
        storage = (
            item.get("InstanceStorageInfo", {}).get("TotalSizeInGB", 0)
            if item.get("InstanceStorageSupported")
            else 0
        )
        efa = (
            network.get("EfaInfo", {}).get("MaximumEfaInterfaces", 0)
            if network.get("EfaSupported")
            else 0
        )
        rows.append(
            {
                "instance_type": name,
                "vcpus": str(item["VCpuInfo"]["DefaultVCpus"]),
                "memory_mib": str(item["MemoryInfo"]["SizeInMiB"]),
                "architectures": ",".join(item["ProcessorInfo"]["SupportedArchitectures"]),
                "gpu_manufacturer": gpu.get("Manufacturer", ""),
                "gpu_model": gpu.get("Name", ""),
                "gpu_count": str(gpu.get("Count", "")),
                "gpu_partition": str(gpu.get("GpuPartitionSize", "")),
                "gpu_memory_mib": str(gpu.get("MemoryInfo", {}).get("SizeInMiB", "")),
                "efa_interfaces": str(efa),
                "instance_storage_gb": str(storage),
            }
        )
    return rows


def write_table(path: Path = TABLE) -> int:
    """Regenerate the table from the installed moto; returns the number of rows."""
    data, version = moto_data()
    rows = rows_from_moto(data)
    with path.open("w", newline="") as handle:
        handle.write(
            f"# Generated by `python -m infra.instances` on {datetime.date.today().isoformat()} from "
            f"moto {version} (moto/ec2/resources/instance_types.json.gz: AWS DescribeInstanceTypes "
            "output). Do not edit by hand.\n"
        )
        writer: csv.DictWriter[str] = csv.DictWriter(
            handle, fieldnames=list(COLUMNS), delimiter="\t", lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


if __name__ == "__main__":
    count = write_table()
    print(f"wrote {count} instance types to {TABLE}", file=sys.stderr)
