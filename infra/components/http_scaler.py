"""Scale to zero for EKS serving: KEDA and its HTTP add-on, and the objects a model needs.

Why not the HorizontalPodAutoscaler: it cannot go below one replica unless the alpha
`HPAScaleToZero` feature gate is on, which EKS does not enable, and with no replica nothing would
be there to receive the request that should wake the model. KEDA (a CNCF graduated project) can
scale a Deployment to zero; its HTTP add-on puts an interceptor in front of the model that counts
requests in flight, holds them while KEDA scales the Deployment up from zero, and forwards them
once a replica is ready. Both come from the KEDA project's own Helm charts at pinned versions.

The add-on's current API: an `InterceptorRoute` (`http.keda.sh/v1beta1`) routes requests to the
model's replicas and reports their concurrency; a KEDA `ScaledObject` (`keda.sh/v1alpha1`) scales
the Deployment on it (external-push trigger). `HTTPScaledObject` (`v1alpha1`), which did both, is
deprecated since add-on 0.14.0 in favour of this pair.

The add-on runs in the `serving` namespace, so each model's Service there can select the
interceptor pods: clients keep the same address (`http://<model>.serving`, port 80) whether the
model scales from zero or not, and the API server's service proxy reaches it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import pulumi
import pulumi_kubernetes as k8s

from infra.components.gpu_pools import SYSTEM_NODE_SELECTOR
from infra.components.network_policies import SERVING_PORT
from infra.config import EksServing

KEDA_NAMESPACE = "keda"
# KEDA is tested against three Kubernetes minors per release (keda.sh/docs/2.20/operate/cluster:
# 2.20 on 1.33-1.35, 2.19 on 1.32-1.34): the chart follows the cluster's minor version.
KEDA_REPO = "https://kedacore.github.io/charts"
KEDA_CHART_VERSIONS = {"1.32": "2.19.0", "1.33": "2.20.2", "1.34": "2.20.2", "1.35": "2.20.2"}
HTTP_ADD_ON_CHART = "keda-add-ons-http"
HTTP_ADD_ON_VERSION = "0.15.0"
HTTP_ADD_ON_RELEASE = "http-add-on"
# Names the chart gives its interceptor pods and its scaler Service (templates/_helpers.tpl).
INTERCEPTOR_LABELS = {
    "app.kubernetes.io/component": "interceptor",
    "app.kubernetes.io/name": "http-add-on",
    "app.kubernetes.io/part-of": HTTP_ADD_ON_CHART,
    "app.kubernetes.io/instance": HTTP_ADD_ON_RELEASE,
}
ADD_ON_PODS = {"app.kubernetes.io/part-of": HTTP_ADD_ON_CHART}
INTERCEPTOR_PORT = 8080  # the chart's interceptor.proxy.port
SCALER_PORT = 9090  # the chart's scaler.grpcPort
SCALER_SERVICE = f"{HTTP_ADD_ON_CHART}-external-scaler"
# A request may wait this long for a replica: a GPU node from zero, the image and the model.
COLD_START_TIMEOUT = "10m"
# Idle this long before going back to zero (the HPA path scales down on the same window).
COOLDOWN_SECONDS = 600
# Requests naming their model in this header are routed to it whatever their Host (the API
# server's service proxy sends its own host name).
MODEL_HEADER = "X-Mlplatform-Model"


@dataclass(frozen=True)
class HttpScalerArgs:
    """The cluster's Kubernetes version and the namespace models are served in."""

    kubernetes_version: str
    serving_namespace: pulumi.Input[str]
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


def http_add_on_values() -> dict:
    """Everything on the system nodes, which never scale to zero: the interceptor must be up
    to take the request that wakes a model. Two of each on the request and scaling paths."""
    return {
        "crds": {"install": True},
        "operator": {"nodeSelector": SYSTEM_NODE_SELECTOR},
        "scaler": {"nodeSelector": SYSTEM_NODE_SELECTOR, "replicas": 2},
        "interceptor": {
            "nodeSelector": SYSTEM_NODE_SELECTOR,
            "replicas": {"min": 2, "max": 10},
        },
    }


def add_on_network_policy() -> dict:
    """The serving namespace denies all traffic by default: let the add-on's pods talk to each
    other (the scaler polls the interceptors), KEDA reach the scaler, and the interceptor reach
    the model replicas. Clients reach the interceptor through allow-serving-ingress (its port
    is the serving port)."""
    add_on = [{"podSelector": {"matchLabels": ADD_ON_PODS}}]
    return {
        "podSelector": {"matchLabels": ADD_ON_PODS},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {"from": add_on},
            {
                "from": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": KEDA_NAMESPACE}
                        }
                    }
                ],
                "ports": [{"protocol": "TCP", "port": SCALER_PORT}],
            },
        ],
        "egress": [
            {"to": add_on},
            {
                "to": [
                    {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "serving"}}}
                ],
                "ports": [{"protocol": "TCP", "port": SERVING_PORT}],
            },
        ],
    }


class HttpScaler(pulumi.ComponentResource):
    """KEDA (namespace `keda`) and its HTTP add-on (the serving namespace), from pinned charts."""

    releases: list[k8s.helm.v3.Release]
    scaler_address: pulumi.Output[str]

    def __init__(self, name: str, args: HttpScalerArgs, opts: pulumi.ResourceOptions | None = None):
        """The Kubernetes provider comes through `opts` (`provider=`), as for any component."""
        super().__init__("mlplatform:eks:HttpScaler", name, None, opts)
        after = list(args.depends_on)
        keda = k8s.helm.v3.Release(
            f"{name}-keda",
            name="keda",
            chart="keda",
            version=KEDA_CHART_VERSIONS[args.kubernetes_version],
            repository_opts={"repo": KEDA_REPO},
            namespace=KEDA_NAMESPACE,
            create_namespace=True,
            values={"nodeSelector": SYSTEM_NODE_SELECTOR},
            atomic=True,
            cleanup_on_fail=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=after),
        )
        add_on = k8s.helm.v3.Release(
            f"{name}-{HTTP_ADD_ON_RELEASE}",
            name=HTTP_ADD_ON_RELEASE,
            chart=HTTP_ADD_ON_CHART,
            version=HTTP_ADD_ON_VERSION,
            repository_opts={"repo": KEDA_REPO},
            namespace=args.serving_namespace,
            values=http_add_on_values(),
            atomic=True,
            cleanup_on_fail=True,
            # Its ScaledObject (for the interceptors) needs KEDA's CRDs first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*after, keda]),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-{HTTP_ADD_ON_RELEASE}",
            metadata={"name": "allow-http-add-on", "namespace": args.serving_namespace},
            spec=cast(k8s.networking.v1.NetworkPolicySpecArgsDict, add_on_network_policy()),
            opts=pulumi.ResourceOptions(parent=self, depends_on=after),
        )
        self.releases = [keda, add_on]
        self.scaler_address = pulumi.Output.from_input(args.serving_namespace).apply(
            lambda namespace: f"{SCALER_SERVICE}.{namespace}:{SCALER_PORT}"
        )
        self._namespace = args.serving_namespace
        self.register_outputs(
            {
                "kedaVersion": KEDA_CHART_VERSIONS[args.kubernetes_version],
                "httpAddOnVersion": HTTP_ADD_ON_VERSION,
            }
        )

    def scale_from_zero(
        self,
        name: str,
        model: str,
        serving: EksServing,
        replica_service: str,
        metadata: k8s.meta.v1.ObjectMetaArgsDict,
        parent: pulumi.Resource,
    ) -> None:
        """A model's InterceptorRoute (to the Service of its replicas) and the ScaledObject that
        sizes its Deployment (named like the model) from zero to maxInstances."""
        # The CRDs come with the charts.
        opts = pulumi.ResourceOptions(parent=parent, depends_on=self.releases)
        k8s.apiextensions.CustomResource(
            f"{name}-route",
            api_version="http.keda.sh/v1beta1",
            kind="InterceptorRoute",
            metadata=metadata,
            spec=pulumi.Output.from_input(self._namespace).apply(
                lambda namespace: interceptor_route_spec(
                    model, namespace, replica_service, serving.target_concurrent_requests
                )
            ),
            opts=opts,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-scaler",
            api_version="keda.sh/v1alpha1",
            kind="ScaledObject",
            metadata=metadata,
            spec=self.scaler_address.apply(
                lambda address: scaled_object_spec(model, serving.max_instances, address)
            ),
            opts=opts,
        )


def model_hosts(model: str, namespace: str) -> list[str]:
    """The Host names in-cluster clients send for a model's Service (the port is ignored)."""
    return [
        model,
        f"{model}.{namespace}",
        f"{model}.{namespace}.svc",
        f"{model}.{namespace}.svc.cluster.local",
    ]


def interceptor_route_spec(
    model: str, namespace: str, backend_service: str, target_concurrency: int
) -> dict:
    """Route a model's requests (by Host, or by the model header) to the Service of its
    replicas, counting those in flight; hold them up to the cold-start timeout."""
    return {
        "target": {"service": backend_service, "port": 80},
        "rules": [
            {"hosts": model_hosts(model, namespace)},
            {"headers": [{"name": MODEL_HEADER, "value": model}]},
        ],
        "scalingMetric": {"concurrency": {"targetValue": target_concurrency}},
        "timeouts": {"readiness": COLD_START_TIMEOUT},
    }


def scaled_object_spec(model: str, max_replicas: int, scaler_address: str) -> dict:
    """Scale the model's Deployment (named like it) between zero and its maximum on the
    concurrency its InterceptorRoute (also named like it) reports."""
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": model},
        "minReplicaCount": 0,
        "maxReplicaCount": max_replicas,
        "cooldownPeriod": COOLDOWN_SECONDS,
        "advanced": {
            "horizontalPodAutoscalerConfig": {
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": COOLDOWN_SECONDS}}
            }
        },
        "triggers": [
            {
                "type": "external-push",
                "metadata": {"interceptorRoute": model, "scalerAddress": scaler_address},
            }
        ],
    }
