"""A real MobileNet in one submission: modeled Pi Zero time at 250 MHz, float32 and float16 weights, the
simulator's wall time, and a per-layer table (each layer run on its own), as markdown.

    .venv/bin/python benchmarks/mobilenet.py [--model mobilenet_v1|mobilenet_v2] [--runs 3]
                                             [--weights float32 float16] [--activations float32 float16]
                                             [--no-layers]
                                             [--set NAME=VALUE ...] [--tune N]

`--set` overrides a timing parameter (vc4common/timing.py) to see how far a policy the Pi has not
measured moves the figure (BENCHMARKS.md, "How far the unmeasured policies move it").

Modeled times are deterministic; the wall time is the median of --runs inferences on this machine.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nnlib  # noqa: E402
from driver import Driver  # noqa: E402
from nnlib import images, models  # noqa: E402
from nnlib.bench import PEAK_GFLOPS, tune_count  # noqa: E402
from nnlib.classify import _main_stall  # noqa: E402
from nnlib.graph import load, simplify  # noqa: E402
from vc4common import timing  # noqa: E402

# Side by side (performance.md §1, §3, §6): what the field reports for each network on a Pi Zero.
OTHERS = {"mobilenet_v1": [
          ("XNNPACK fp32 on the Pi Zero's ARM1176 (CPU)", "3919 ms", "measured, google/XNNPACK README"),
          ("Idein's Pi Zero GPU class (MobileNet v2 pose backbone, 6.6 fps)", "about 100-150 ms",
           "measured, Idein demo"),
          ("compute floor of MobileNet v1 at 24 GFLOPS", "47.4 ms", "derived, performance.md §6")],
          "mobilenet_v2": [
          ("XNNPACK fp32 on the Pi Zero's ARM1176 (CPU)", "1987 ms", "measured, performance.md §3"),
          ("Idein's MobileNet v2 pose backbone on the Pi Zero's GPU (6.6 fps)", "about 151 ms", "measured, Idein demo"),
          ("compute floor of MobileNet v2 at 24 GFLOPS", "25.1 ms", "derived, performance.md §6")]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v1", choices=("mobilenet_v1", "mobilenet_v2"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--weights", nargs="+", default=["float32", "float16"], choices=("float32", "float16"))
    parser.add_argument("--activations", nargs="+", default=["float32"], choices=("float32", "float16"),
                        help="how GEMMs store what depthwise layers read (nnlib.compile)")
    parser.add_argument("--no-layers", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--tune", type=tune_count, default=0, metavar="N",
                        help="each GEMM layer keeps the fastest of its N cheapest tilings (nnlib.compile's tune=; "
                             "the compile time then includes the N runs per layer)")
    args = parser.parse_args()
    for setting in args.set:
        timing.override(setting)
    entry = models.MODELS[args.model]
    path, photo = models.fetch(args.model), models.fetch("grace_hopper")
    graph = simplify(load(path, list(entry.outputs)))
    image = images.load_image(photo, 224, entry.preprocessing)
    labels = images.imagenet_labels(1001 if args.model == "mobilenet_v1" else 1000)
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}; "
          "times at 250 MHz are modeled by the simulator's timing model\n")
    print("| weights | activations | modeled ms (one submission) | GFLOPS | % of peak | instructions | top-1 "
          "| compile s | sim wall s (median) |")
    print("|---|---|---:|---:|---:|---:|---|---:|---:|")
    profiles = {}
    with Driver(backend="sim") as drv:
        drv.backend.prepare()             # the simulator's core compiled before any timed run
        for weights, activations in ((w, a) for a in args.activations for w in args.weights):
            start = time.perf_counter()
            net = nnlib.compile(copy.deepcopy(graph), drv, weights=weights, activations=activations, tune=args.tune)
            compiled = time.perf_counter() - start
            with net:
                walls = []
                for _ in range(args.runs):
                    start = time.perf_counter()
                    logits, report = net(image)
                    walls.append(time.perf_counter() - start)
                seconds = report.seconds()
                gflops = net.flops / seconds / 1e9
                print(f"| {weights} | {activations} | {seconds * 1e3:.1f} | {gflops:.2f} | "
                      f"{100 * gflops / PEAK_GFLOPS:.0f} % | "
                      f"{report.instructions:,} | {labels[int(logits.argmax())]} | {compiled:.1f} | "
                      f"{statistics.median(walls):.1f} |", flush=True)
                if not args.no_layers:
                    profiles[f"{weights} weights, {activations} activations"] = net.profile(image)
    print("\n| others | time | kind |\n|---|---:|---|")
    for name, value, kind in OTHERS[args.model]:
        print(f"| {name} | {value} | {kind} |")
    for kind, lines in profiles.items():
        print(f"\nPer layer, {kind} (each layer run on its own, modeled at 250 MHz):\n")
        print("| # | layer | kind | output | ms | % of peak | main stall (share of the QPUs' time) |")
        print("|---:|---|---|---|---:|---:|---|")
        for n, line in enumerate(lines):
            ms = line.report.seconds() * 1e3
            percent = 100 * line.flops / line.report.seconds() / 1e9 / PEAK_GFLOPS
            name = line.name.split("/")[-2] if line.name.count("/") >= 2 else line.name
            print(f"| {n} | {name} | {line.kind} | {'x'.join(map(str, line.shape))} | {ms:.3f} | {percent:.0f} | "
                  f"{_main_stall(line.report)} |")
        print(f"\nsum of the layers: {sum(x.report.seconds() for x in lines) * 1e3:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
