"""The NN kernels' benchmark table (`vc4 bench`, benchmarks/nn_bench.py): SGEMM, MobileNet v1's
first convolution, pointwise, depthwise and FC layers at 250 MHz (Pi Zero), modeled on the
simulator or measured on a Pi.

For the kernels with weights, float32 and float16 weights side by side: time, GFLOPS and % of the
24 GFLOPS peak. Depthwise layers are memory-bound, so they show GB/s and the ratio to their
DMA-bound time: the input at the VDR rate and the output at the VDW rate, both engines at once
(performance.md §4, vc4common/timing.py). Every row also gives the QPU instructions and the wall
time of the run (the simulator's, on the simulator). The layer shapes come from the real MobileNet v1
(nnlib.models fetches and caches it; without it the command says why and stops).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from driver import Driver
from vc4common.timing import param

from . import matmul as G
from . import models
from .layers import conv2d, conv_depthwise

PEAK_GFLOPS = 24.0          # 12 QPUs x 16 lanes x 2 flops / 4 clocks x 250 MHz (performance.md §2)


def mobilenet_layers(kind: str) -> list[tuple]:
    """Distinct (name, ...) shapes of MobileNet v1's layers of one kind ("pw", "dw", "fc"), read from
    the real model (fetched and cached by nnlib.models): pw (name, M, Cin, Cout), dw (name, size,
    channels, stride), fc (name, Cin, Cout)."""
    from .graph import load, simplify
    from .graph.passes import shapes

    graph = simplify(load(models.fetch("mobilenet_v1", quiet=True), list(models.MODELS["mobilenet_v1"].outputs)))
    sizes = shapes(graph)
    out: list[tuple] = []
    for node in graph.nodes:
        if len(sizes[node.inputs[0]]) != 3:
            continue
        size, _, cin = sizes[node.inputs[0]]
        if kind == "dw" and node.op == "depthwise":
            stride = node.attrs.get("stride", 1)
            out.append((f"dw s{stride} {cin} @{size}", size, cin, stride))
        elif node.op == "conv2d" and graph.constant(node.inputs[1]).shape[:2] == (1, 1):
            cout = graph.constant(node.inputs[1]).shape[3]
            if kind == "pw" and size > 1:
                out.append((f"pw {cin}->{cout} @{size}", size * size, cin, cout))
            elif kind == "fc" and size == 1:
                out.append((f"fc {cin}->{cout}", cin, cout))
    return list(dict.fromkeys(out))


def flops_row(name: str, flops: int, run) -> str:
    """A row of the table: run(weights) -> report, for float32 and float16 weights."""
    cells, instructions, wall = [], 0, 0.0
    for weights in ("float32", "float16"):
        start = time.perf_counter()
        report = run(weights)
        wall += time.perf_counter() - start
        gflops = flops / report.seconds() / 1e9
        cells.append(f"{report.seconds() * 1e3:>9.3f} {gflops:>6.2f} {gflops / PEAK_GFLOPS:>4.0%}")
        instructions = report.instructions
    return f"{name:<26} {cells[0]}   {cells[1]} {instructions:>12,} {wall:>6.1f}"


def gemm_row(drv, name: str, m: int, k: int, n: int, fused: bool, rng, tune: int = 0) -> str:
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    bias = np.zeros(n, np.float32) if fused else None
    return flops_row(name, 2 * m * n * k, lambda weights: G.matmul(drv, a, b, bias, relu6=fused, weights=weights,
                                                                    tune=tune)[1])


def conv_row(drv, rng) -> str:
    """MobileNet's first layer: 3x3/s2, 3 -> 32 channels, 224 -> 112 (patches gathered on the QPUs)."""
    x = rng.uniform(-1, 1, (224, 224, 3)).astype(np.float32)
    w = (rng.standard_normal((3, 3, 3, 32)) * 0.3).astype(np.float32)
    bias = np.zeros(32, np.float32)
    return flops_row("conv 3x3/s2 3->32 @224", 2 * 112 * 112 * 27 * 32,
                     lambda weights: conv2d(drv, x, w, bias, 2, "tf_same", weights=weights)[1])


def depthwise_row(drv, name: str, size: int, channels: int, stride: int, rng) -> str:
    x = rng.standard_normal((size, size, channels)).astype(np.float32)
    w = rng.standard_normal((3, 3, channels)).astype(np.float32)
    start = time.perf_counter()
    y, report = conv_depthwise(drv, x, w, np.zeros(channels, np.float32), stride)
    wall = time.perf_counter() - start
    bytes_in, bytes_out = x.nbytes, y.nbytes
    clock = param("clock_hz")
    # The DMA-bound time: the VPM DMA engines moving the layer in (VDR) and out (VDW) at their
    # published rates, both at once (performance.md §4). The kernel reads through the TMUs instead;
    # this is the yardstick the issue sets.
    bound = max(bytes_in / param("vdr_bytes_per_clock"), bytes_out / param("vdw_bytes_per_clock")) / clock
    seconds = report.seconds()
    return (f"{name:<26} {seconds * 1e3:>9.3f} {(bytes_in + bytes_out) / seconds / 1e9:>6.2f} GB/s "
            f"{seconds / bound:>5.2f}x of {bound * 1e3:.3f} ms {report.instructions:>12,} {wall:>6.1f}")


def tune_count(text: str) -> int:
    """--tune's N: a whole number of tilings, 0 or more."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: the number of tilings to measure, 0 or more")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", choices=("sgemm", "conv", "pointwise", "depthwise", "fc"))
    parser.add_argument("--quick", action="store_true", help="skip SGEMM 1024^3 (30 s of simulation)")
    parser.add_argument("--backend", choices=("auto", "sim", "mailbox"), default="sim")
    parser.add_argument("--tune", type=tune_count, default=0, metavar="N",
                        help="each GEMM keeps the fastest of its N cheapest tilings, measured on the backend "
                             "(nnlib.matmul's tune=N; the wall time then includes the N runs)")


def run(args: argparse.Namespace) -> int:
    try:
        layers = {kind: mobilenet_layers(kind) for kind in ("pw", "dw", "fc")}
    except models.FetchError as error:
        print(f"vc4 bench: error: the MobileNet v1 layer shapes come from the model: {error}", file=sys.stderr)
        return 1
    rng = np.random.default_rng(0)
    print(f"{'kernel':<26} {'--- float32 weights ---':>21}   {'--- float16 weights ---':>21}")
    print(f"{'':<26} {'ms':>9} {'GFLOPS':>6} {'peak':>4}   {'ms':>9} {'GFLOPS':>6} {'peak':>4} "
          f"{'instructions':>12} {'wall s':>6}")
    with Driver(backend=args.backend) as drv:
        drv.backend.prepare()             # the simulator's core compiled before any timed run
        if args.only in (None, "sgemm"):
            shapes = [("sgemm 96x363 x 363x3072", 96, 363, 3072)]
            if not args.quick:
                shapes.append(("sgemm 1024^3", 1024, 1024, 1024))
            for name, m, k, n in shapes:
                print(gemm_row(drv, name, m, k, n, False, rng, args.tune), flush=True)
        if args.only in (None, "conv"):
            print(conv_row(drv, rng), flush=True)
        if args.only in (None, "pointwise"):
            for name, m, k, n in layers["pw"]:
                print(gemm_row(drv, name, m, k, n, True, rng, args.tune), flush=True)
        if args.only in (None, "fc"):
            for name, k, n in layers["fc"]:
                print(gemm_row(drv, name, 1, k, n, False, rng, args.tune), flush=True)
        if args.only in (None, "depthwise"):
            print(f"\n{'depthwise (memory-bound)':<26} {'ms':>9} {'rate':>11} {'vs DMA-bound time':>21}")
            for name, size, channels, stride in layers["dw"]:
                print(depthwise_row(drv, name, size, channels, stride, rng), flush=True)
    return 0

