"""The `mlplatform:network` section: the VPC the stack runs in."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator

from infra.config.base import Section


class Network(Section):
    """VPC layout: private subnets for compute, public subnets for NAT and load balancers."""

    cidr: str = Field(
        default="10.0.0.0/16",
        description="VPC CIDR, a private (RFC 1918) range between /16 and /20.",
    )
    az_count: int = Field(
        default=2, ge=2, le=6, description="Availability zones to spread subnets over."
    )
    nat_gateways: Literal["single", "perZone", "none"] = Field(
        default="perZone",
        description="NAT for the EKS nodes' outbound traffic: `single` saves cost (dev), "
        "`perZone` survives a zone outage (prod), `none` for a cluster that reaches everything "
        "through endpoints. A stack without a cluster gets none: SageMaker jobs and endpoints "
        "reach S3 through the free gateway endpoint.",
    )
    private_endpoints: bool = Field(
        default=False,
        description="Interface endpoints (ECR, STS, SageMaker API/runtime; EKS ones with a "
        "cluster), so traffic to them stays off the internet; about $7 a month each per zone. "
        "The S3 gateway endpoint is always created (free).",
    )

    @field_validator("cidr")
    @classmethod
    def _private_cidr(cls, value: str) -> str:
        try:
            net = ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"not a valid IPv4 CIDR block ({exc})") from None
        if net.version != 4 or not net.is_private:
            raise ValueError("must be a private IPv4 range (10/8, 172.16/12 or 192.168/16)")
        if not 16 <= net.prefixlen <= 20:
            raise ValueError("prefix length must be between /16 and /20")
        return value
