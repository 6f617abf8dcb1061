"""EKS serving that scales to zero: a dev model at `minInstances: 0` is sized by KEDA on the
concurrency its HTTP add-on's interceptor sees, not by an HPA, and its Service leads to that
interceptor; KEDA is installed, pinned, only where some model needs it.

The InterceptorRoute and ScaledObject are checked against hand-written JSON Schemas of the fields
this platform sets, transcribed from the CRDs of the pinned charts (keda 2.20.2
`crd-scaledobjects.yaml`, keda-add-ons-http 0.15.0 `crd-interceptorroutes.yaml`), unknown fields
refused: the CRD files themselves are not vendored into the repository.
"""

from __future__ import annotations

import copy

import jsonschema
import kubernetes_validate
import pytest
import yaml

from infra.components.http_scaler import (
    COLD_START_TIMEOUT,
    HTTP_ADD_ON_VERSION,
    INTERCEPTOR_LABELS,
    INTERCEPTOR_PORT,
    KEDA_CHART_VERSIONS,
    MODEL_HEADER,
    SCALER_PORT,
)
from infra.config import KUBERNETES_VERSIONS, StackConfigError
from infra.stackfile import load_stack_file
from mlplatform.plan import Plan, plan_stack
from mlplatform.variants import write_variant
from policies.offline import check_plan, mandatory
from tests.conftest import FIXTURE_STACKS_DIR

MODEL = "digits-eks"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
ROUTE = "kubernetes:http.keda.sh/v1beta1:InterceptorRoute"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
ZERO = {
    "name": MODEL,
    "path": "models/digits",
    "training": {
        "plane": "sagemaker",
        "instanceType": "ml.m5.xlarge",
        "spot": True,
        "maxRuntimeHours": 1,
        "maxWaitHours": 2,
    },
    "serving": {
        "plane": "eks",
        "pool": "l4",
        "minInstances": 0,
        "maxInstances": 2,
        "targetConcurrentRequests": 4,
    },
}


def dev_models() -> list[dict]:
    document = yaml.safe_load((FIXTURE_STACKS_DIR / "Pulumi.dev.yaml").read_text())
    return document["config"]["mlplatform:models"]


@pytest.fixture(scope="module")
def zero(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    """dev with one more model, served on EKS from the L4 pool, scaling to zero."""
    overrides = {"mlplatform:models": [*dev_models(), ZERO]}
    path = write_variant(
        tmp_path_factory.mktemp("zero"), "dev", overrides, "zero", stacks_dir=FIXTURE_STACKS_DIR
    )
    return plan_stack(path, "zero")


def of_model(plan: Plan, type_token: str) -> list[dict]:
    return [
        r.inputs
        for r in plan.of_type(type_token)
        if r.inputs.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/name") == MODEL
    ]


def test_a_model_at_min_zero_is_scaled_by_keda_from_zero_to_its_maximum(zero: Plan):
    (scaled,) = of_model(zero, SCALED_OBJECT)
    spec = scaled["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 2)
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": MODEL}
    (trigger,) = spec["triggers"]
    assert trigger == {
        "type": "external-push",
        "metadata": {
            "interceptorRoute": MODEL,
            "scalerAddress": f"keda-add-ons-http-external-scaler.serving:{SCALER_PORT}",
        },
    }
    assert not of_model(zero, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    (deployment,) = of_model(zero, "kubernetes:apps/v1:Deployment")
    assert deployment["spec"]["replicas"] == 0, "a deploy wakes no GPU node"
    (planned,) = [
        r for r in zero.of_type("kubernetes:apps/v1:Deployment") if r.inputs is deployment
    ]
    assert planned.ignore_changes == ["spec.replicas"], "`pulumi up` never resets KEDA's count"


def test_hpa_served_models_set_their_floor_on_every_deploy(plan_of):
    # A model moved from minInstances 0 back to 1 may sit at zero replicas, where the HPA does
    # not act: the Deployment's replicas must then be applied, not ignored.
    staging = plan_of("staging")
    for deployment in staging.of_type("kubernetes:apps/v1:Deployment"):
        assert deployment.ignore_changes == [], deployment.name
        assert deployment.inputs["spec"]["replicas"] >= 1


def test_the_route_counts_the_models_requests_and_waits_for_a_cold_start(zero: Plan):
    (route,) = of_model(zero, ROUTE)
    spec = route["spec"]
    assert spec["target"] == {"service": f"{MODEL}-backend", "port": 80}
    hosts, headers = spec["rules"]
    assert (
        f"{MODEL}.serving" in hosts["hosts"]
        and f"{MODEL}.serving.svc.cluster.local" in hosts["hosts"]
    )
    assert headers == {"headers": [{"name": MODEL_HEADER, "value": MODEL}]}
    assert spec["scalingMetric"] == {"concurrency": {"targetValue": 4}}
    assert spec["timeouts"] == {"readiness": COLD_START_TIMEOUT}


def test_the_models_service_leads_to_the_interceptor_and_the_backend_to_its_replicas(zero: Plan):
    services = {
        s["metadata"]["name"]: s["spec"] for s in of_model(zero, "kubernetes:core/v1:Service")
    }
    (deployment,) = of_model(zero, "kubernetes:apps/v1:Deployment")
    replicas = deployment["spec"]["selector"]["matchLabels"]
    front, backend = services[MODEL], services[f"{MODEL}-backend"]
    assert front["selector"] == INTERCEPTOR_LABELS
    assert front["ports"] == [
        {"name": "http", "port": 80, "targetPort": INTERCEPTOR_PORT, "protocol": "TCP"}
    ]
    assert backend["selector"] == replicas and backend["ports"][0]["targetPort"] == "http"
    assert zero.outputs["kubernetesServices"][MODEL] == MODEL, "clients keep the same address"
    (pdb,) = of_model(zero, "kubernetes:policy/v1:PodDisruptionBudget")
    # maxUnavailable (not minAvailable) holds at any count, zero included.
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": replicas}}


def test_keda_and_its_http_add_on_are_pinned_and_installed_only_where_needed(zero: Plan, plan):
    releases = {r.inputs["chart"]: r for r in zero.of_type(HELM_RELEASE)}
    keda, add_on = releases["keda"], releases["keda-add-ons-http"]
    assert keda.inputs["version"] == KEDA_CHART_VERSIONS[zero.config.cluster.version]
    assert (keda.inputs["namespace"], add_on.inputs["namespace"]) == ("keda", "serving")
    assert add_on.inputs["version"] == HTTP_ADD_ON_VERSION
    for release in (keda, add_on):
        assert release.inputs["repositoryOpts"]["repo"] == "https://kedacore.github.io/charts"
    assert keda.urn in add_on.depends_on, "the add-on's own ScaledObject needs KEDA's CRDs"
    for custom in (*zero.of_type(ROUTE), *zero.of_type(SCALED_OBJECT)):
        assert {keda.urn, add_on.urn} <= set(custom.depends_on), custom.name
    charts = {r.inputs["chart"] for r in plan.of_type(HELM_RELEASE)}
    assert not charts & {"keda", "keda-add-ons-http"}, "no model of the suite's stacks is at zero"


def test_keda_follows_the_clusters_minor_version():
    assert sorted(KEDA_CHART_VERSIONS) == sorted(KUBERNETES_VERSIONS)


def test_the_add_on_may_reach_the_replicas_and_keda_may_reach_its_scaler(zero: Plan):
    (policy,) = [
        r.inputs
        for r in zero.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
        if r.inputs["metadata"]["name"] == "allow-http-add-on"
    ]
    spec = policy["spec"]
    assert spec["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/part-of": "keda-add-ons-http"}
    }
    ingress_from_keda = spec["ingress"][1]
    assert ingress_from_keda["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "keda"
    }
    assert ingress_from_keda["ports"] == [{"protocol": "TCP", "port": SCALER_PORT}]
    to_replicas = spec["egress"][1]
    assert to_replicas["to"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/component": "serving"
    }
    assert to_replicas["ports"] == [{"protocol": "TCP", "port": 8080}]


def test_a_model_scaled_to_zero_alarms_on_crash_loops_but_has_no_replica_floor(zero: Plan):
    names = {r.inputs["name"] for r in zero.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert f"mlplatform-zero-{MODEL}-crashloop" in names
    assert f"mlplatform-zero-{MODEL}-replicas" not in names


def test_the_variant_passes_every_mandatory_policy(zero: Plan):
    assert [f"{v.policy}: {v.message}" for v in mandatory(check_plan(zero))] == []


def test_every_kubernetes_object_of_the_variant_validates_strictly(zero: Plan):
    version = zero.config.cluster.version
    builtin = [
        r
        for r in zero.resources
        if r.type.startswith("kubernetes:")
        and r.type != HELM_RELEASE
        and r.type not in (ROUTE, SCALED_OBJECT)
    ]
    assert {r.type.rsplit(":", 1)[-1] for r in builtin} >= {
        "Service",
        "Deployment",
        "NetworkPolicy",
    }
    for resource in builtin:
        _, group_version, kind = resource.type.split(":")
        body = {k: v for k, v in resource.inputs.items() if k not in ("apiVersion", "kind")}
        manifest = {"apiVersion": group_version.removeprefix("core/"), "kind": kind, **body}
        kubernetes_validate.validate(manifest, f"{version}.0", strict=True)


# The fields this platform sets, as the pinned CRDs declare them (types, bounds, required,
# and their CEL rules as JSON Schema: exactly one of port/portName, at least one metric).
_NAME = {"type": "string", "minLength": 1}
_INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
INTERCEPTOR_ROUTE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["target", "scalingMetric"],
    "properties": {
        "target": {
            "type": "object",
            "additionalProperties": False,
            "required": ["service"],
            "oneOf": [{"required": ["port"]}, {"required": ["portName"]}],
            "properties": {
                "service": _NAME,
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "portName": _NAME,
            },
        },
        "rules": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "hosts": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                    "paths": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["value"],
                            "properties": {"value": _NAME},
                        },
                    },
                    "headers": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["name"],
                            "properties": {"name": _NAME, "value": {"type": "string"}},
                        },
                    },
                },
            },
        },
        "scalingMetric": {
            "type": "object",
            "additionalProperties": False,
            "anyOf": [{"required": ["concurrency"]}, {"required": ["requestRate"]}],
            "properties": {
                "concurrency": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["targetValue"],
                    "properties": {"targetValue": {"type": "integer", "minimum": 1}},
                },
            },
        },
        "timeouts": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "readiness": {"type": "string"},
                "request": {"type": "string"},
                "responseHeader": {"type": "string"},
            },
        },
    },
}
SCALED_OBJECT_SPEC = {
    "type": "object",
    "additionalProperties": False,
    "required": ["scaleTargetRef", "triggers"],
    "properties": {
        "scaleTargetRef": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "name": {"type": "string"},
            },
        },
        "minReplicaCount": _INT32,
        "maxReplicaCount": _INT32,
        "cooldownPeriod": _INT32,
        "advanced": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "horizontalPodAutoscalerConfig": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        # autoscaling/v2 HorizontalPodAutoscalerBehavior, checked by Kubernetes' schema below.
                        "behavior": {"type": "object"}
                    },
                }
            },
        },
        "triggers": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["metadata", "type"],
                "properties": {
                    "type": {"type": "string"},
                    "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
        },
    },
}


def test_the_custom_resources_have_only_the_documented_fields(zero: Plan):
    (route,) = of_model(zero, ROUTE)
    (scaled,) = of_model(zero, SCALED_OBJECT)
    jsonschema.validate(route["spec"], INTERCEPTOR_ROUTE)
    jsonschema.validate(scaled["spec"], SCALED_OBJECT_SPEC)
    # The behaviour block is the HPA's own type: Kubernetes' schema checks it.
    behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "probe"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": MODEL},
            "maxReplicas": 1,
            "behavior": behavior,
        },
    }
    kubernetes_validate.validate(hpa, f"{zero.config.cluster.version}.0", strict=True)


def test_the_hand_written_schemas_refuse_a_misspelt_or_missing_field(zero: Plan):
    (route,) = of_model(zero, ROUTE)
    misspelt = copy.deepcopy(route["spec"])
    misspelt["scalingMetric"]["concurrency"]["target"] = 3
    both_ports = copy.deepcopy(route["spec"])
    both_ports["target"]["portName"] = "http"
    (scaled,) = of_model(zero, SCALED_OBJECT)
    no_triggers = {**scaled["spec"], "triggers": []}
    for spec, schema in (
        (misspelt, INTERCEPTOR_ROUTE),
        (both_ports, INTERCEPTOR_ROUTE),
        (no_triggers, SCALED_OBJECT_SPEC),
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(spec, schema)


def test_min_instances_may_be_zero_on_eks_but_not_negative(stack_variant):
    serving = ZERO["serving"]
    for value, ok in ((0, True), (-1, False)):
        model = {**ZERO, "serving": {**serving, "minInstances": value}}
        path = stack_variant("dev", {"mlplatform:models": [*dev_models(), model]})
        if ok:
            load_stack_file(path)
        else:
            with pytest.raises(StackConfigError, match="minInstances"):
                load_stack_file(path)


def test_a_scaled_object_past_the_environments_serving_bound_is_caught(plan_variant):
    model = {**ZERO, "serving": {**ZERO["serving"], "maxInstances": 3}}
    plan = plan_variant("dev", {"mlplatform:models": [*dev_models(), model]})
    found = [v.message for v in mandatory(check_plan(plan)) if v.policy == "serving-bounds"]
    assert found == ["ScaledObject may reach 3 replicas (spec.maxReplicaCount); the limit is 2"]
