"""Build the optional Cython fast path ``dispatch._fastpath``.

The extension is optional by design (DESIGN.md, "Ecosystem"): when Cython or a C compiler is
missing the build carries on without it and the package runs on the pure-Python reference
(``dispatch._reference``), reporting which one is active through ``dispatch.fastpath``.
Set ``DISPATCH_REQUIRE_EXTENSION=1`` to make a failed extension build fail the install.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

REQUIRE_EXTENSION = os.environ.get("DISPATCH_REQUIRE_EXTENSION") == "1"


class OptionalBuildExt(build_ext):
    """build_ext that degrades to the pure-Python reference instead of failing."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # compiler missing, Cython missing, ...
            if REQUIRE_EXTENSION:
                raise
            print(f"warning: fast path not built ({exc}); using the pure-Python reference",
                  file=sys.stderr)

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:
            if REQUIRE_EXTENSION:
                raise
            print(f"warning: {ext.name} not built ({exc}); using the pure-Python reference",
                  file=sys.stderr)


def extensions() -> list:
    try:
        from Cython.Build import cythonize
    except ImportError:
        if REQUIRE_EXTENSION:
            raise
        print("warning: Cython not available; using the pure-Python reference", file=sys.stderr)
        return []
    from setuptools import Extension

    ext = Extension(
        "dispatch._fastpath",
        ["src/dispatch/_fastpath.pyx"],
        extra_compile_args=["-O3"],
    )
    return cythonize(
        [ext],
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
