"""The NetworkPolicies of the workload namespaces: deny all traffic, then allow what training
and serving need. The VPC CNI's network-policy agent enforces them (the cluster enables it)."""

from __future__ import annotations

# The port serving pods listen on (the serving image's default): the one port other pods of
# the cluster may reach in the serving namespace.
SERVING_PORT = 8080
# The EKS Pod Identity agent answers credential requests on this link-local address, on the
# node's host network: a default-deny egress would cut pods off from their AWS credentials.
POD_IDENTITY_AGENT = "169.254.170.23/32"


def network_policies(namespace: str) -> dict[str, dict]:
    """NetworkPolicy specs of a workload namespace by name: deny everything, then allow DNS,
    AWS APIs (HTTPS, through NAT or the VPC endpoints) and credentials, plus what the
    namespace's workloads need: serving takes requests from pods of the cluster on its port;
    training pods talk to each other (torchrun rendezvous, NCCL on ephemeral ports)."""
    everyone: dict = {}
    specs: dict[str, dict] = {
        "default-deny": {"podSelector": everyone, "policyTypes": ["Ingress", "Egress"]},
        "allow-dns": {
            "podSelector": everyone,
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                            },
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }
                    ],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                }
            ],
        },
        "allow-aws-apis": {
            "podSelector": everyone,
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                    "ports": [{"protocol": "TCP", "port": 443}],
                },
                {
                    "to": [{"ipBlock": {"cidr": POD_IDENTITY_AGENT}}],
                    "ports": [{"protocol": "TCP", "port": 80}],
                },
            ],
        },
    }
    if namespace == "serving":
        specs["allow-serving-ingress"] = {
            "podSelector": everyone,
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"namespaceSelector": everyone}],
                    "ports": [{"protocol": "TCP", "port": SERVING_PORT}],
                }
            ],
        }
    if namespace == "training":
        peers = [{"podSelector": everyone}]
        specs["allow-training-peers"] = {
            "podSelector": everyone,
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": peers}],
            "egress": [{"to": peers}],
        }
    return specs
