"""The GPU catalogue matches NVIDIA's MIG placement table."""

from __future__ import annotations

import pytest

from fairpack.solver import gpumodels


@pytest.mark.parametrize("model", gpumodels.MODELS, ids=lambda m: m.name)
def test_every_profile_fits_inside_the_gpu_from_each_start(model: gpumodels.GpuModel) -> None:
    for profile in model.mig_profiles:
        assert all(start + profile.size <= gpumodels.MIG_SLOTS for start in profile.starts), profile


@pytest.mark.parametrize(
    ("compute", "size", "starts"),
    [
        pytest.param(1, 1, (0, 1, 2, 3, 4, 5, 6), id="1g"),
        pytest.param(1, 2, (0, 2, 4, 6), id="1g-double-memory"),
        pytest.param(2, 2, (0, 2, 4), id="2g"),
        pytest.param(3, 4, (0, 4), id="3g"),
        pytest.param(4, 4, (0,), id="4g"),
        pytest.param(7, 8, (0,), id="7g"),
    ],
)
def test_h100_geometry_is_the_mig_guides(compute: int, size: int, starts: tuple[int, ...]) -> None:
    model = gpumodels.by_name("H100-80GB")
    matching = [p for p in model.mig_profiles if (p.compute_slices, p.size) == (compute, size)]
    assert [p.starts for p in matching] == [starts]


def test_unknown_profile_error_names_the_valid_ones() -> None:
    with pytest.raises(KeyError, match=r"3g\.40gb"):
        gpumodels.by_name("A100-80GB").profile("3g.20gb")


def test_product_label_finds_the_model_and_unknown_products_are_none() -> None:
    assert gpumodels.by_product("NVIDIA-H200") == gpumodels.by_name("H200-141GB")
    assert gpumodels.by_product("Tesla-T4") is None
