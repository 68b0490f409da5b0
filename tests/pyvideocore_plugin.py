"""A pytest plugin that runs py-videocore's own test suite, unmodified, on vc4kit (driver.compat).

Loaded with `-p tests.pyvideocore_plugin` by tests/test_pyvideocore.py in a pytest of its own, with
py-videocore's folder on the path. What py-videocore's tests need beside its driver is provided here,
not by editing its files: `nose.tools` (nose does not run on Python >= 3.10; its `raises` and
`assert_raises` are two lines of unittest), and `rpi_vcsm` (a Pi's module) through compat.install().
"""

from __future__ import annotations

import functools
import sys
import types
import unittest

import numpy as np

from driver import compat


def _raises(*exceptions):
    def decorate(test):
        @functools.wraps(test)
        def run(*args, **kwargs):
            with unittest.TestCase().assertRaises(exceptions):
                test(*args, **kwargs)
        return run
    return decorate


_nose = types.ModuleType("nose")
_nose.tools = types.ModuleType("nose.tools")
_nose.tools.raises = _raises
_nose.tools.assert_raises = unittest.TestCase().assertRaises
sys.modules.setdefault("nose", _nose)
sys.modules.setdefault("nose.tools", _nose.tools)
compat.install()
if not hasattr(np, "alltrue"):              # removed in numpy 2.0; py-videocore's test_rotate uses it
    np.alltrue = np.all


def pytest_runtest_setup(item) -> None:
    """py-videocore's tests draw their inputs unseeded; seeded here, per test, so that a run is
    reproducible. Unseeded, test_unpack_regA_float fails about once in a thousand runs, on the
    hardware as on vc4kit: a draw below float16's smallest normal (6.1e-5) is a half denormal, which
    the QPU's unpack makes a float denormal and the ALU flushes to zero (semantics.md §5.1)."""
    import random

    np.random.seed(0)
    random.seed(0)
