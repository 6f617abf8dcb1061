"""Property helpers: instance storage facts agree with AWS's data, pipeline steps parse."""

from __future__ import annotations

import json

from infra import instances
from policies.rules.props import local_storage, training_steps


def test_local_storage_reads_the_instance_facts_and_asks_for_a_key_when_it_cannot_tell():
    # The facts themselves are checked against AWS's data in tests/infra (instance facts table).
    for instance_type in ("ml.g5.xlarge", "g4dn.xlarge", "ml.p4d.24xlarge", "ml.g7e.2xlarge"):
        assert local_storage(instance_type) is instances.has_instance_storage(instance_type) is True
    assert local_storage("ml.m5.xlarge") is False
    # Unknown types count as EBS-backed, so the rule demands the stack's key (fail closed).
    for unknown in ("ml.p3.2xlarge", "[computed]"):
        assert local_storage(unknown) is False


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
