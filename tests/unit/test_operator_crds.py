"""The CRDs in manifests/crds: complete descriptions (kubectl explain), and examples that name them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from fairpack.solver import gpumodels

ROOT = Path(__file__).resolve().parents[2]
CRDS = {p.name: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "manifests" / "crds").glob("*.yaml"))}
FAIRPACK_CRDS = {name: crd for name, crd in CRDS.items() if crd["spec"]["group"] == "fairpack.io"}


def fields(schema: Mapping[str, Any], path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every named field below ``schema`` with its dotted path."""
    for name, sub in (schema.get("properties") or {}).items():
        yield f"{path}.{name}", sub
        yield from fields(sub, f"{path}.{name}")
    if isinstance(extra := schema.get("additionalProperties"), dict):
        yield from fields(extra, f"{path}.*")
    if isinstance(items := schema.get("items"), dict):
        yield from fields(items, f"{path}[]")


@pytest.mark.parametrize("name", sorted(FAIRPACK_CRDS))
def test_every_field_of_a_fairpack_crd_has_a_description(name: str) -> None:
    schema = FAIRPACK_CRDS[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    missing = [path for path, sub in fields(schema, "") if path != ".metadata" and not sub.get("description")]
    assert missing == []


@pytest.mark.parametrize("name", sorted(FAIRPACK_CRDS))
def test_every_fairpack_crd_has_status_subresource_and_printer_columns(name: str) -> None:
    version = FAIRPACK_CRDS[name]["spec"]["versions"][0]
    assert version["name"] == "v1alpha1"
    assert "status" in version["subresources"]
    assert version["additionalPrinterColumns"]


def test_llmservice_scales_through_the_scale_subresource() -> None:
    scale = FAIRPACK_CRDS["llmservice.yaml"]["spec"]["versions"][0]["subresources"]["scale"]
    assert scale == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }


def test_the_schema_knows_exactly_the_mig_profiles_fairpack_places() -> None:
    # An unknown profile is rejected by the API server; the list must follow solver/gpumodels.
    schema = FAIRPACK_CRDS["llmservice.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]["properties"]
    for gpu in (spec["gpu"], spec["prefill"]["properties"]["gpu"]):
        enum = gpu["properties"]["migProfile"]["enum"]
        assert sorted(enum) == sorted({p.name for m in gpumodels.MODELS for p in m.mig_profiles})


def test_tenant_is_cluster_scoped() -> None:
    assert FAIRPACK_CRDS["tenant.yaml"]["spec"]["scope"] == "Cluster"


def test_examples_use_only_kinds_the_crds_define() -> None:
    """Besides fairpack's kinds, the examples hold only the PriorityClasses they name."""
    kinds = {crd["spec"]["names"]["kind"] for crd in FAIRPACK_CRDS.values()}
    docs = [
        doc
        for path in (ROOT / "manifests" / "examples").glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
    ]
    used = {doc["kind"] for doc in docs if doc["apiVersion"].startswith("fairpack.io/")}
    others = {
        (doc["apiVersion"], doc["kind"]) for doc in docs if not doc["apiVersion"].startswith("fairpack.io/")
    }
    assert used == kinds
    assert others == {("scheduling.k8s.io/v1", "PriorityClass")}
