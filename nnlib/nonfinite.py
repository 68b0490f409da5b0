"""What nnlib computes where its inputs hold NaN or infinities: the QPU's rules, not numpy's.

The QPU's float unit has no NaN (semantics.md §4.1, measured on hardware): an operand whose exponent
field is 255 acts as an infinity of its own sign (a NaN too, its mantissa dropped), fmul of a
(flushed) zero and an infinity is +0, and fadd/fsub of two opposite infinities is an infinity (the
sign of the second operand), never NaN. fmin/fmax order bit patterns (a positive NaN sorts above
+Inf). So every nnlib kernel, and every layer of a compiled network, computes:

- a NaN input as the infinity of its sign: a result numpy gives as NaN is +-Inf here;
- a product of an infinite input and a zero weight (or of zero and an infinite weight) as +0: the
  result is the finite sum of the other terms where numpy gives NaN;
- a sum that meets +Inf and -Inf as an infinity whose sign depends on the summation order (numpy:
  NaN);
- ReLU6 of +Inf (or a positive NaN) as 6 and of -Inf (or a negative NaN) as 0 (numpy's clip keeps
  a NaN);
- overflow as +-Inf, like numpy; no result is ever NaN.

Where no NaN or infinity reaches a result, the result is numpy's within the kernels' round-toward-zero
bounds. nnlib warns (NonFiniteWarning) when an input or a weight holds NaN or an infinity, since the
results that they reach can then differ from numpy's.
"""

from __future__ import annotations

import warnings

import numpy as np


class NonFiniteWarning(UserWarning):
    """An input or weight holds NaN or an infinity: see nnlib.nonfinite for what the QPU computes."""


def warn_nonfinite(where: str, **arrays) -> None:
    """Warn once per call naming each array (by its keyword) that holds NaN or an infinity."""
    found = []
    for name, array in arrays.items():
        if array is None:
            continue
        values = np.asarray(array)
        if values.dtype.kind != "f" or np.isfinite(values).all():
            continue
        nans = int(np.isnan(values).sum())
        infs = int(np.isinf(values).sum())
        found.append(f"{name} holds {nans} NaN and {infs} infinite values")
    if found:
        warnings.warn(f"{where}: {'; '.join(found)}: the QPU has no NaN (a NaN acts as an infinity, 0 x Inf "
                      "is +0, ReLU6 clamps infinities to 0 or 6), so results they reach can differ from "
                      "numpy's (see nnlib.nonfinite)", NonFiniteWarning, stacklevel=3)


def as_the_qpu_reads(x: np.ndarray) -> np.ndarray:
    """x with each NaN replaced by the infinity of its sign: the operand the QPU's float unit sees."""
    x = np.asarray(x, np.float32)
    return np.where(np.isnan(x), np.copysign(np.float32(np.inf), x), x).astype(np.float32)


__all__ = ["NonFiniteWarning", "as_the_qpu_reads", "warn_nonfinite"]
