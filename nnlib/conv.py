"""3x3 full convolution (MobileNet's first layer) as a GEMM over image patches, in one submission.

x (H, W, Cin), padded (TF SAME or explicit), is cut into its 3x3 windows, each flattened to 9 Cin
values in (kh, kw, cin) order; the patches (H' W', 9 Cin) times w (3, 3, Cin, Cout) reshaped to
(9 Cin, Cout) is the convolution, with bias and ReLU6 fused into the GEMM's store. Two chained
segments do it with no host work in between: im2col.py gathers the patches straight into the
GEMM's A pack (tiles of 16 pixels, 8 with float16 weights), and the GEMM kernel multiplies.
"""

from __future__ import annotations

import numpy as np

from . import im2col, reference
from .chain import Segment, run_chain
from .matmul import LANES, TASK_WORDS, GemmKernel, plan_gemm
from .tasks import free_all, keep, padded_vector


def conv2d(drv, x, w, bias=None, stride: int = 1, padding: reference.Padding = "tf_same", relu6: bool = True,
           weights: str = "float32"):
    """3x3 convolution of x (H, W, Cin) by w (3, 3, Cin, Cout), + bias, ReLU6: (result, report)."""
    x = np.asarray(x, np.float32)
    w = np.asarray(w, np.float32)
    if x.ndim != 3 or w.ndim != 4 or w.shape[:3] != (3, 3, x.shape[2]):
        raise ValueError(f"conv2d: x {x.shape} (H, W, Cin) and w {w.shape} (3, 3, Cin, Cout) do not match")
    if stride not in (1, 2):
        raise ValueError(f"stride {stride}: 1 or 2")
    if weights not in ("float32", "float16"):
        raise ValueError(f"weights={weights!r}: 'float32' or 'float16'")
    height, width, channels = x.shape
    top, bottom, left, right = reference.pad_amounts(height, width, stride, padding)
    out_h = (height + top + bottom - 3) // stride + 1
    out_w = (width + left + right - 3) // stride + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"conv2d: {x.shape} with padding {padding!r} leaves no output")
    padded = np.zeros((height + top + bottom, width + left + right, channels), np.float32)
    padded[top:top + height, left:left + width] = x
    halves = 2 if weights == "float16" else 1
    cout = w.shape[3]
    # One k of a 16-row tile is one 16-lane vector of the pack: what the gather writes.
    plan = plan_gemm(out_h * out_w, cout, 9 * channels, halves, rows=LANES, relu6=relu6)
    cfg = GemmKernel(plan.rows, plan.unroll, 4, halves, bias is not None, relu6, plan.overlap)
    gather = im2col.Im2colKernel(im2col.patch_offsets(3, padded.shape[1] * channels, channels, channels, plan.k_pad))
    blocks: list = []
    try:
        x_gpu = keep(blocks, drv.copy(padded))
        b_gpu = keep(blocks, drv.copy(plan.pack_b(w.reshape(-1, cout), cfg.prefetch)))
        bias_gpu = keep(blocks, drv.copy(padded_vector(bias, plan.n_pad))) if bias is not None else None
        pack = keep(blocks, drv.alloc(plan.pack_bytes // 4, np.float32))
        c_gpu = keep(blocks, drv.alloc((plan.m_pad + plan.rows, plan.n_pad), np.float32))
        corners = im2col.window_corners(out_h, out_w, padded.shape[1] * channels, channels, stride, x_gpu.address)
        table = keep(blocks, drv.copy(im2col.lane_table(corners, plan)))
        tiles = plan.m_pad // plan.rows
        segments = [
            Segment(gather, [], [[table.address + 4 * LANES * t, pack.address + t * plan.a_tile_bytes]
                                          for t in range(tiles)], im2col.TASK_WORDS),
            Segment(cfg, plan.constants(cfg, c_gpu.address + 4 * plan.m_pad * plan.n_pad),
                    plan.tasks(pack.address, b_gpu.address, c_gpu.address,
                               bias_gpu.address if bias_gpu is not None else None), TASK_WORDS, dealt=True)]
        report = run_chain(drv, segments)
        result = np.array(c_gpu[:plan.m, :plan.n]).reshape(out_h, out_w, cout)
    finally:
        free_all(drv, blocks)
    return result, report


__all__ = ["conv2d"]
