"""Shared fixtures. ``impl`` runs a fast-path test once per implementation (STYLE.md parity)."""

from __future__ import annotations

import pytest

from dispatch.fastpath import implementations


@pytest.fixture(params=sorted(implementations()))
def impl(request: pytest.FixtureRequest):
    """Each available fast-path implementation: ``python`` always, ``cython`` when built."""
    return implementations()[request.param]
