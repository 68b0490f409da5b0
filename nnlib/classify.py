"""`vc4 classify IMAGE`: a photo through a whole CNN on the QPUs, in one submission.

    vc4 classify sample                      # the real MobileNet v1 on matplotlib's Grace Hopper photo
    vc4 classify cat.jpg --weights float16 --layers
    vc4 classify cat.jpg --model mobilenet_v2           # torchvision's MobileNetV2, fetched
    vc4 classify cat.jpg --model my.onnx --backend mailbox --json

The model (by default the TF-slim MobileNet v1 1.0-224; `--model mobilenet_v2` torchvision's
MobileNetV2; both fetched from the package registry and cached: nnlib/models.py; or a model file)
is compiled into one program (nnlib/network.py), the photo preprocessed as the model's training
evaluated (nnlib/images.py: TF-slim's or torchvision's) and run once; the table shows the top-5 classes, the time the
run took on a Pi Zero's V3D at 250 MHz (modeled by the simulator, measured on a Pi), and, for each CPU
runtime installed (the `ref` extra: onnxruntime, ai-edge-litert), whether it agrees on the same weights.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from driver import Driver

from . import images, models
from .bench import PEAK_GFLOPS, tune_count
from .graph import ModelError, load, simplify
from .network import compile as compile_network
from .network import softmax

SAMPLE = "sample"
DEFAULT_MODEL = "mobilenet_v1"
KNOWN_MODELS = ", ".join(name for name, entry in models.MODELS.items() if entry.outputs)   # not the photo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help=f"a photo (JPEG, PNG, ...), or '{SAMPLE}' for the sample photo "
                                      "(matplotlib's Grace Hopper, fetched from the package registry)")
    parser.add_argument("--model", help=f"a model file (.pb, .onnx, .tflite, .pth) or a known model ({KNOWN_MODELS}; "
                                        f"fetched); default: {DEFAULT_MODEL}")
    parser.add_argument("--preprocessing", choices=images.PREPROCESSING,
                        help="how the photo becomes the input (default: the known model's own; for a file "
                             "torchvision's for a .pth, else TF-slim's)")
    parser.add_argument("--output", action="append", help="the model's output tensor (with --model; repeatable)")
    parser.add_argument("--weights", choices=("float32", "float16"), default="float32",
                        help="how the GEMMs store their weights (float16: half the traffic)")
    parser.add_argument("--activations", choices=("float32", "float16"), default="float32",
                        help="how the GEMMs store what depthwise layers read (float16: half the traffic)")
    parser.add_argument("--tune", type=tune_count, default=0, metavar="N",
                        help="each GEMM layer keeps the fastest of its N cheapest tilings, timed on the backend at "
                             "compile time (about a second each on the simulator)")
    parser.add_argument("--backend", choices=("auto", "sim", "mailbox"), default="sim")
    parser.add_argument("--layers", action="store_true",
                        help="also run each layer on its own and show its time, %% of peak and main stall")
    parser.add_argument("--top", type=int, default=5, help="classes to show (default 5)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--clock", type=float, default=250.0, help="V3D clock for modeled times, MHz (default 250)")


def _paths(args: argparse.Namespace) -> tuple[Path, list[str] | None, Path, str]:
    """The model file, its outputs, the photo and how to preprocess it."""
    name = args.model or DEFAULT_MODEL
    entry = models.MODELS.get(name)
    if entry is not None and entry.outputs:
        model, outputs, preprocessing = models.fetch(name), args.output or list(entry.outputs), entry.preprocessing
    else:
        model, outputs = Path(name), args.output
        if not model.suffix and not model.exists():
            raise ModelError(name, None, None, f"neither a model file nor a known model ({KNOWN_MODELS})")
        preprocessing = "torchvision" if model.suffix.lower() == ".pth" else "tf_slim"
    image = models.fetch("grace_hopper") if args.image == SAMPLE else Path(args.image)
    return model, outputs, image, args.preprocessing or preprocessing


def _main_stall(report) -> str:
    """What the QPUs waited for most, as a share of their time (12 QPUs x the run's cycles)."""
    totals: dict[str, int] = {}
    for q in report.per_qpu:
        for reason, cycles in q.stall_cycles.items():
            totals[reason] = totals.get(reason, 0) + cycles
    whole = report.cycles * len(report.per_qpu) or 1
    reason, cycles = max(totals.items(), key=lambda item: item[1], default=("none", 0))
    return f"{reason} {100 * cycles / whole:.0f} %" if cycles else "none"


def _cpu_verdicts(graph, image: np.ndarray, logits: np.ndarray, top: int) -> list[dict]:
    """The CPU reference runtimes that are installed (the `ref` extra), on the same weights: the
    graph written as .onnx for onnxruntime and as .tflite for ai-edge-litert, run on the same image;
    their output against the QPU's (`logits`: the graph's output, after the host's softmax if the
    graph ends with one)."""
    import tempfile

    verdicts = []
    with tempfile.TemporaryDirectory() as folder:
        for runtime, run_model in (("onnxruntime", _onnxruntime), ("ai_edge_litert", _litert)):
            try:
                version, cpu = run_model(graph, image, Path(folder))
            except ImportError:
                continue
            same = list(np.argsort(-cpu)[:top]) == list(np.argsort(-logits)[:top])
            verdicts.append({"runtime": f"{runtime} {version}", "top_equal": bool(same),
                             "max_abs_difference": float(np.abs(cpu - logits).max())})
    return verdicts


def _onnxruntime(graph, image: np.ndarray, folder: Path) -> tuple[str, np.ndarray]:
    import onnxruntime

    from .graph import onnx_format

    session = onnxruntime.InferenceSession(str(onnx_format.save(graph, folder / "model.onnx")),
                                           providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: image[None]})[0]
    return onnxruntime.__version__, out.reshape(-1)


def _litert(graph, image: np.ndarray, folder: Path) -> tuple[str, np.ndarray]:
    from importlib.metadata import version

    from ai_edge_litert.interpreter import Interpreter

    from .graph import tflite_format

    interpreter = Interpreter(model_path=str(tflite_format.save(graph, folder / "model.tflite")))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image[None])
    interpreter.invoke()
    return version("ai-edge-litert"), interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).reshape(-1)


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    try:
        model, outputs, photo, preprocessing = _paths(args)
        graph = simplify(load(model, outputs))
        clock = args.clock * 1e6
        with Driver(backend=args.backend) as drv:
            with console.status("preparing the simulator's core (compiled once, then loaded from its cache)"
                                if drv.backend.name == "sim" else "preparing the backend"):
                start = time.perf_counter()
                drv.backend.prepare()           # so that "run in" times the simulation alone
                prepared = time.perf_counter() - start
            with console.status(f"compiling {model.name} for 12 QPUs ({args.weights} weights, "
                                f"{args.activations} activations)"):
                start = time.perf_counter()
                net = compile_network(graph, drv, weights=args.weights, activations=args.activations,
                                      tune=args.tune)
                compiled = time.perf_counter() - start
            with net:
                size = net.input.shape
                image = images.load_image(photo, size[0], preprocessing) if size[0] == size[1] else None
                if image is None or image.shape != size:
                    raise ModelError(model.name, None, None, f"an input of shape {size} is not an RGB square")
                where = "simulating the V3D" if drv.backend.name == "sim" else "running on the V3D"
                with console.status(f"{where}: one submission, {len(net.layers)} layers"):
                    start = time.perf_counter()
                    logits, report = net(image)
                    wall = time.perf_counter() - start
                layer_lines = []
                if args.layers:
                    with console.status("each layer on its own, for the per-layer table"):
                        layer_lines = net.profile(image)
        # The softmax of the logits, on the host: the model's own last op when it ends with one.
        probabilities = softmax(logits)
        names = images.imagenet_labels(len(logits)) if len(logits) in (1000, 1001) else None
        best = list(np.argsort(-probabilities)[:args.top])
        verdicts = _cpu_verdicts(graph, image, probabilities if net.softmax else logits, args.top)
    except (models.FetchError, ModelError, images.ImageError, FileNotFoundError) as error:
        console.print(f"vc4 classify: error: {error}", markup=False, highlight=False, soft_wrap=True)
        return 1
    result = {
        "model": model.name, "image": photo.name, "weights": args.weights, "activations": args.activations,
        "preprocessing": preprocessing,
        "submissions": 1,
        "top": [{"class": int(i), "name": names[i] if names else str(i), "probability": float(probabilities[i])}
                for i in best],
        "seconds": report.seconds(clock), "kind": "modeled" if report.modeled else "measured",
        "clock_mhz": args.clock, "instructions": report.instructions, "compile_seconds": compiled,
        "backend_prepare_seconds": prepared,
        "run_wall_seconds": wall, "cpu_references": verdicts,
        "layers": [{"name": line.name, "kind": line.kind, "seconds": line.report.seconds(clock),
                    "percent_of_peak": _percent(line.flops, line.report.seconds(clock)),
                    "main_stall": _main_stall(line.report)} for line in layer_lines],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    _print(result, layer_lines, clock)
    return 0


def _percent(flops: int, seconds: float) -> float:
    return 100 * flops / seconds / 1e9 / PEAK_GFLOPS if seconds else 0.0


def _print(result: dict, layer_lines: list, clock: float) -> None:
    out = Console() if sys.stdout.isatty() else Console(width=240)     # piped: no cell cut at 80 columns
    precision = f"{result['weights']} weights" + (", float16 activations" if result["activations"] == "float16" else "")
    table = Table(title=f"{result['image']}: {result['model']} ({precision})")
    table.add_column("#", justify="right")
    table.add_column("class")
    table.add_column("probability", justify="right")
    for rank, entry in enumerate(result["top"], 1):
        table.add_row(str(rank), entry["name"], f"{entry['probability']:.4f}")
    out.print(table)
    device = "Pi Zero V3D" if result["kind"] == "modeled" else "this Pi's V3D"
    out.print(f"{result['seconds'] * 1e3:.1f} ms on a {device} at {result['clock_mhz']:g} MHz ({result['kind']}), "
              f"one submission, {result['instructions']:,} QPU instructions; compiled in "
              f"{result['compile_seconds']:.1f} s, run in {result['run_wall_seconds']:.1f} s here"
              + (f" (before that the simulator's core took {result['backend_prepare_seconds']:.0f} s to compile, "
                 "once)" if result["backend_prepare_seconds"] > 10 else ""), highlight=False)
    for verdict in result["cpu_references"]:
        word = "agrees" if verdict["top_equal"] else "DISAGREES"
        out.print(f"CPU reference {verdict['runtime']} (same weights): {word} on the top {len(result['top'])}, "
                  f"largest difference {verdict['max_abs_difference']:.2g}", highlight=False)
    if not result["cpu_references"]:
        out.print("no CPU reference runtime installed (pip install 'vc4kit[ref]' to compare)", highlight=False)
    if layer_lines:
        layers = Table(title="each layer on its own (a diagnostic: the network runs as one submission)")
        for name in ("layer", "kind", "output", "ms", "% of peak", "main stall"):
            layers.add_column(name, justify="left" if name in ("layer", "kind") else "right")
        for line, entry in zip(layer_lines, result["layers"], strict=True):
            layers.add_row(line.name.split("/")[-2] if "/" in line.name else line.name, line.kind,
                           "x".join(map(str, line.shape)), f"{entry['seconds'] * 1e3:.3f}",
                           f"{entry['percent_of_peak']:.0f}", entry["main_stall"])
        total = sum(entry["seconds"] for entry in result["layers"])
        layers.caption = f"sum {total * 1e3:.1f} ms; % of the {PEAK_GFLOPS:g} GFLOPS peak at 250 MHz"
        out.print(layers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vc4 classify")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
