"""Least privilege per model: a training role for its jobs and a hosting role for its endpoint,
each reaching only that model's prefixes, images and the stack key, trusted only as SageMaker
documents for each use."""

from __future__ import annotations

import json

from mlplatform.plan import Plan

ROLE = "aws:iam/role:Role"
POLICY = "aws:iam/rolePolicy:RolePolicy"
ACCOUNT = "123456789012"


def statements(plan: Plan, name: str) -> dict[str, dict]:
    policy = json.loads(plan.get(POLICY, name).inputs["policy"])
    return {s["Sid"]: s for s in policy["Statement"]}


def test_each_model_has_its_own_roles_for_the_sagemaker_work_it_does(plan: Plan):
    for model in plan.config.models:
        roles = plan.outputs["modelRoles"][model.name]
        expected = {"training"} if model.training.plane == "sagemaker" else set()
        expected |= {"hosting"} if model.serving.plane == "sagemaker" else set()
        assert set(roles) == expected, "EKS workloads use Pod Identity roles instead"
    every = [arn for roles in plan.outputs["modelRoles"].values() for arn in roles.values()]
    assert len(set(every)) == len(every), "no role is shared between models or uses"


def test_training_roles_reach_only_their_models_prefixes(plan: Plan):
    buckets = {b.outputs["bucket"]: b.outputs["arn"] for b in plan.of_type("aws:s3/bucket:Bucket")}
    arns = {role: buckets[name] for role, name in plan.outputs["bucketNames"].items()}
    for model in plan.config.models:
        if model.training.plane != "sagemaker":
            continue
        found = statements(plan, f"mlplatform-{plan.stack}-{model.name}-sagemaker-training")
        writes = set(found["WriteModelObjects"]["Resource"])
        expected = {
            f"{arns['datasets']}/{model.name}/prepared/*",
            f"{arns['artifacts']}/models/{model.name}/*",
            f"{arns['checkpoints']}/{model.name}/*",
        }
        if getattr(model.serving, "data_capture_percent", 0):  # the drift baseline
            expected.add(f"{arns['artifacts']}/monitoring/{model.name}/baseline/*")
        assert writes == expected
        reads = set(found["ReadModelObjects"]["Resource"])
        assert f"{arns['datasets']}/{model.name}/train/*" in reads
        assert all(f"/{model.name}/" in r or r.endswith(f"/{model.name}/*") for r in reads), reads
        assert not any(r.endswith("/*") and r.count("/") == 1 for r in reads), "no whole bucket"
        # The access logs are for auditors, not for the jobs whose requests they record.
        assert not any("access-logs" in r for r in reads | writes)
        key = plan.outputs["kmsKeyArn"]
        assert found["UseStackKey"]["Resource"] == [key]


def test_hosting_roles_only_read_their_models_artifacts(plan: Plan):
    for model in plan.config.models:
        if model.serving.plane != "sagemaker":
            continue
        found = statements(plan, f"mlplatform-{plan.stack}-{model.name}-sagemaker-hosting")
        reads = sorted(
            r.split(":::", 1)[1].split("/", 1)[1] for r in found["ReadModelObjects"]["Resource"]
        )
        # What the endpoint and batch jobs write, each only where the stack uses it.
        writes = []
        if getattr(model.serving, "data_capture_percent", 0):  # and the drift check's reports
            writes += [f"data-capture/{model.name}/*", f"monitoring/{model.name}/*"]
        if getattr(model.serving, "mode", "") == "async":
            writes.append(f"async/{model.name}/*")
        if model.batch:
            writes.append(f"batch/{model.name}/*")
        expected_reads = [f"models/{model.name}/*", *writes]
        if model.batch:
            expected_reads.append(model.batch.input.prefix or f"{model.name}/batch/input/*")
        assert reads == sorted(r if r.endswith("*") else r + "*" for r in expected_reads)
        if writes:
            found_writes = found["WriteModelObjects"]["Resource"]
            assert sorted(w.split("/", 1)[1] for w in found_writes) == sorted(writes)
        else:
            assert "WriteModelObjects" not in found, "an endpoint writes nothing without capture"
        assert "ReadStackSecrets" not in found


def test_roles_trust_sagemaker_only_in_the_source_arn_forms_it_sets(plan_of):
    plan = plan_of("dev")
    region = plan.config.region
    training = json.loads(
        plan.get(ROLE, "mlplatform-dev-digits-sagemaker-training").inputs["assumeRolePolicy"]
    )
    (trust,) = training["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    assert trust["Condition"]["ArnLike"]["aws:SourceArn"] == [
        f"arn:aws:sagemaker:{region}:{ACCOUNT}:training-job/*",
        f"arn:aws:sagemaker:{region}:{ACCOUNT}:processing-job/*",
        f"arn:aws:sagemaker:{region}:{ACCOUNT}:hyper-parameter-tuning-job/*",
    ]
    hosting = json.loads(
        plan.get(ROLE, "mlplatform-dev-digits-sagemaker-hosting").inputs["assumeRolePolicy"]
    )
    (trust,) = hosting["Statement"]
    # Inference (real-time, serverless, async) sets exactly the account-wide form.
    assert (
        trust["Condition"]["ArnLike"]["aws:SourceArn"] == f"arn:aws:sagemaker:{region}:{ACCOUNT}:*"
    )


def test_endpoints_run_as_their_models_hosting_role(plan: Plan):
    for model in plan.config.models:
        if model.serving.plane != "sagemaker":
            continue
        (sagemaker_model,) = [
            r
            for r in plan.of_type("aws:sagemaker/model:Model")
            if r.name == f"mlplatform-{plan.stack}-{model.name}"
        ]
        assert (
            sagemaker_model.inputs["executionRoleArn"]
            == plan.outputs["modelRoles"][model.name]["hosting"]
        )


def test_an_external_channel_is_readable_only_because_the_stack_allows_it(plan_variant):
    channel = {"uri": "s3://shared-research-data/digits/v3/", "allowExternal": True}
    plan = plan_variant(
        "dev",
        {"mlplatform:models": [{"name": "digits", "training": {"channels": {"train": channel}}}]},
    )
    found = statements(plan, "mlplatform-variant-digits-sagemaker-training")
    assert found["ReadExternalChannels"]["Resource"] == [
        "arn:aws:s3:::shared-research-data/digits/v3/*"
    ]
    assert found["ListExternalChannels"]["Resource"] == ["arn:aws:s3:::shared-research-data"]


def test_a_training_role_reads_the_raw_input_the_stack_names(plan_variant):
    # The prepare step's `--input`: a datasets prefix of the stack's choosing, or an external URI.
    external = {"uri": "s3://partner-drop/digits/", "allowExternal": True}
    for raw in ({"prefix": "shared/digits/raw-v2/"}, external):
        overrides = {"mlplatform:models": [{"name": "digits", "training": {"rawData": raw}}]}
        plan = plan_variant("dev", overrides)
        datasets = plan.outputs["bucketNames"]["datasets"]
        expected = (
            f"arn:aws:s3:::{datasets}/shared/digits/raw-v2/*"
            if "prefix" in raw
            else "arn:aws:s3:::partner-drop/digits/*"
        )
        found = statements(plan, "mlplatform-variant-digits-sagemaker-training")
        reads = [
            r
            for s in found.values()
            if "s3:GetObject" in s["Action"]
            for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
        ]
        assert expected in reads, reads
