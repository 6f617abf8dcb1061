"""Property helpers: instance storage facts agree with AWS's data, pipeline steps parse."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import moto

from infra.prices import load
from policies.rules.props import ec2_type, local_storage, training_steps


def test_local_storage_matches_aws_instance_data_for_every_priced_type():
    # moto ships AWS's DescribeInstanceTypes output; InstanceStorageSupported is the truth.
    path = Path(moto.__file__).parent / "ec2" / "resources" / "instance_types.json.gz"
    data = json.loads(gzip.decompress(path.read_bytes()))
    table = load("us-east-1")
    for instance_type in [*table.ec2_hourly, *table.sagemaker_hourly]:
        facts = data.get(ec2_type(instance_type))
        if facts is None:  # ml.t2 and similar SageMaker-only generations
            continue
        assert local_storage(instance_type) == bool(facts.get("InstanceStorageSupported")), (
            instance_type
        )


def test_training_steps_resolve_parameters_and_read_tuning_limits():
    definition = {
        "Parameters": [{"Name": "Type", "Type": "String", "DefaultValue": "ml.g5.xlarge"}],
        "Steps": [
            {"Name": "Evaluate", "Type": "Processing", "Arguments": {}},
            {
                "Name": "Tune",
                "Type": "Tuning",
                "Arguments": {
                    "HyperParameterTuningJobConfig": {
                        "ResourceLimits": {
                            "MaxNumberOfTrainingJobs": 6,
                            "MaxParallelTrainingJobs": 2,
                        }
                    },
                    "TrainingJobDefinition": {
                        "ResourceConfig": {
                            "InstanceType": {"Get": "Parameters.Type"},
                            "InstanceCount": 2,
                        },
                        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
                        "EnableManagedSpotTraining": True,
                    },
                },
            },
        ],
    }
    [step] = training_steps(json.dumps(definition))
    assert (step.name, step.instance_type, step.instance_count) == ("Tune", "ml.g5.xlarge", 2)
    assert (step.total_jobs, step.parallel_jobs, step.max_runtime_s, step.spot) == (
        6,
        2,
        3600,
        True,
    )
    assert list(training_steps("[computed]")) == []
