"""Shared fixtures. ``impl`` runs a fast-path test once per implementation (STYLE.md parity)."""

from __future__ import annotations

import functools
import inspect

import pytest
import trio

from dispatch.fastpath import implementations


@pytest.fixture(params=sorted(implementations()))
def impl(request: pytest.FixtureRequest):
    """Each available fast-path implementation: ``python`` always, ``cython`` when built."""
    return implementations()[request.param]


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests under ``trio.run`` (a minimal stand-in for pytest-trio)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    trio.run(functools.partial(pyfuncitem.obj, **kwargs))
    return True
