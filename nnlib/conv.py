"""3x3 full convolution (MobileNet's first layer) as a GEMM over image patches.

x (H, W, Cin) is cut into its 3x3 windows (TF SAME or explicit padding), each flattened to 9 Cin
values in (kh, kw, cin) order; the result (H' W', 9 Cin) times w (3, 3, Cin, Cout) reshaped to
(9 Cin, Cout) is the convolution, with bias and ReLU6 fused into the GEMM's store. The windows are
gathered on the host for now: for the first layer the input comes from the host anyway, but a
network in one submission will want a QPU kernel for it (the next issue).
"""

from __future__ import annotations

import numpy as np

from . import reference
from .matmul import matmul


def conv2d(drv, x, w, bias=None, stride: int = 1, padding: reference.Padding = "tf_same", relu6: bool = True,
           **options):
    """3x3 convolution of x (H, W, Cin) by w (3, 3, Cin, Cout), + bias, ReLU6: (result, report)."""
    x = np.asarray(x, np.float32)
    w = np.asarray(w, np.float32)
    if x.ndim != 3 or w.ndim != 4 or w.shape[:3] != (3, 3, x.shape[2]):
        raise ValueError(f"conv2d: x {x.shape} (H, W, Cin) and w {w.shape} (3, 3, Cin, Cout) do not match")
    if stride not in (1, 2):
        raise ValueError(f"stride {stride}: 1 or 2")
    patches = reference.windows(x, stride, padding)
    out_h, out_w = patches.shape[:2]
    columns = np.ascontiguousarray(patches).reshape(out_h * out_w, -1)
    result, report = matmul(drv, columns, w.reshape(-1, w.shape[3]), bias, relu6, **options)
    return result.reshape(out_h, out_w, -1), report


__all__ = ["conv2d"]
