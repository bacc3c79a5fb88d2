"""Quantities parse as Kubernetes parses them, and bad ones name where they were."""

from __future__ import annotations

import pytest

from fairpack.solver import quantity


@pytest.mark.parametrize(
    ("resource", "text", "expected"),
    [
        pytest.param("cpu", "500m", 500, id="millicores"),
        pytest.param("cpu", "1.5", 1500, id="decimal-cores"),
        pytest.param("cpu", "0.1", 100, id="tenth-of-a-core"),
        pytest.param("cpu", "2", 2000, id="whole-cores"),
        pytest.param("cpu", 2, 2000, id="json-number"),
        pytest.param("cpu", "0.0001", 1, id="below-a-millicore-rounds-up"),
        pytest.param("cpu", "1e3", 1_000_000, id="exponent"),
        pytest.param("cpu", "100u", 1, id="micro-rounds-up"),
        pytest.param("memory", "4Gi", 4 * 2**30, id="gibibytes"),
        pytest.param("memory", "1Ki", 1024, id="kibibytes"),
        pytest.param("memory", "100M", 100_000_000, id="megabytes"),
        pytest.param("memory", "1.5Gi", 3 * 2**29, id="fractional-binary"),
        pytest.param("memory", "2E", 2 * 10**18, id="exa-not-exponent"),
        pytest.param("memory", "1E3", 1000, id="capital-exponent"),
        pytest.param("memory", "0.5", 1, id="half-byte-rounds-up"),
        pytest.param("memory", "+5", 5, id="explicit-plus"),
        pytest.param("memory", ".5Ki", 512, id="leading-point"),
        pytest.param("nvidia.com/gpu", "8", 8, id="extended-resource"),
    ],
)
def test_quantities_parse_to_integers_in_the_resources_unit(
    resource: str, text: str | int, expected: int
) -> None:
    assert quantity.amount(resource, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("5 cores", id="words"),
        pytest.param("", id="empty"),
        pytest.param("-1", id="negative"),
        pytest.param("1.2.3", id="two-points"),
        pytest.param("1e", id="exponent-without-digits"),
        pytest.param("1KiB", id="unknown-suffix"),
        pytest.param(" 1", id="leading-space"),
        pytest.param(".", id="no-digits"),
        pytest.param("1ki", id="lower-case-binary"),
    ],
)
def test_malformed_quantities_are_rejected_with_the_field_they_came_from(text: str) -> None:
    where = "pod default/web-1: spec.containers[0].resources.requests.cpu"
    with pytest.raises(quantity.QuantityError, match=r"^pod default/web-1: spec\.containers\[0\]"):
        quantity.milli(text, where=where)


def test_a_quantity_error_is_a_value_error_that_quotes_the_value() -> None:
    with pytest.raises(ValueError, match="'5 cores' is not a Kubernetes quantity"):
        quantity.whole("5 cores")
