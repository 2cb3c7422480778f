"""_fastpath.pxd: another Cython module can cimport the fast path's C layer and get the same
results (the point of shipping the .pxd). Compiles a small module in a temporary directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dispatch._reference import siphash128

pytest.importorskip("Cython")

SRC = Path(__file__).resolve().parents[2] / "src"

MODULE = '''# cython: language_level=3
from dispatch._fastpath cimport _ing_u64, dpi_siphash128, dpi_trunk, dpi_normalize

def sip(bytes key, bytes data):
    cdef unsigned char out[16]
    cdef _ing_u64 k0 = int.from_bytes(key[:8], "little"), k1 = int.from_bytes(key[8:], "little")
    dpi_siphash128(k0, k1, data, len(data), out)
    return out[:16]

def packed(bytes phone):
    cdef dpi_trunk trunk
    cdef _ing_u64 value = 0
    trunk.on = 0
    code = dpi_normalize(phone, 0, len(phone), &trunk, &value, NULL)
    return value if code == 0 else -code
'''

BUILD = f'''
from setuptools import setup
from Cython.Build import cythonize
setup(ext_modules=cythonize("use_fastpath.pyx", include_path=[{str(SRC)!r}], quiet=True),
      script_args=["build_ext", "--inplace", "-q"])
'''

CHECK = '''
import use_fastpath
print(use_fastpath.sip(bytes(range(16)), b"79123456789").hex(), use_fastpath.packed(b"+7 912 345-67-89"))
'''


@pytest.mark.slow
def test_another_cython_module_can_cimport_the_c_layer(tmp_path: Path) -> None:
    (tmp_path / "use_fastpath.pyx").write_text(MODULE)
    (tmp_path / "build.py").write_text(BUILD)
    built = subprocess.run([sys.executable, "build.py"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
    if built.returncode != 0 and "command 'gcc' failed" in built.stderr + built.stdout:
        pytest.skip("no C compiler")
    assert built.returncode == 0, built.stderr[-2000:]
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    assert out == [siphash128(bytes(range(16)), b"79123456789").hex(), "79123456789"]
