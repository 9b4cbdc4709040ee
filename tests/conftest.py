"""Shared fixtures: small real spaces and architectures (no mocks)."""

from __future__ import annotations

import numpy as np
import pytest

from edgenas.space import HeadSpec, SearchSpace, StageSpec, StemSpec, get_space


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def micro_space() -> SearchSpace:
    """Small enough to enumerate every architecture (1,600 of them)."""
    return SearchSpace(
        name="micro",
        stem=StemSpec(16, 3, 1),
        stages=(
            StageSpec(16, 1, (1, 2), kernels=(3, 5), expansions=(3, 6)),
            StageSpec(24, 2, (1, 2), kernels=(3, 5), expansions=(3, 6)),
        ),
        head=HeadSpec(32),
        resolutions=(8, 16),
        widths=(0.5, 1.0),
    )


@pytest.fixture(params=["tiny", "small", "imagenet"])
def preset(request) -> SearchSpace:
    return get_space(request.param)
