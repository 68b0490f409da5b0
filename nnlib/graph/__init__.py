"""nnlib.graph: a model file becomes a small graph IR (ir.py), simplified by passes (passes.py), which a
backend runs: graph.run on the CPU with nnlib's references today.

    g = nnlib.graph.load("mobilenet_v1.pb")          # .pb (TensorFlow frozen GraphDef), .onnx, .tflite, .pth
    nnlib.graph.simplify(g)                          # batch norm folded, bias and ReLU6 fused, ...
    logits = nnlib.graph.run(g, image)[g.outputs[0]]
"""

from __future__ import annotations

from pathlib import Path

from .ir import Graph, ModelError, Node
from .passes import simplify
from .run import run


def load(path: str | Path, outputs: list[str] | None = None) -> Graph:
    """A model file as a Graph, by its suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".pb":
        from . import tf

        return tf.load(path, outputs)
    if suffix == ".tflite":
        from . import tflite_format

        graph = tflite_format.load(path)
        graph.outputs = outputs or graph.outputs
        return graph
    if suffix == ".onnx":
        from . import onnx_format

        graph = onnx_format.load(path)
        graph.outputs = outputs or graph.outputs
        return graph
    if suffix == ".pth":                 # weights only: taken as a torchvision MobileNetV2's state dict
        from . import mobilenet_v2, torch_legacy

        return mobilenet_v2.build(torch_legacy.load_state_dict(path), Path(path).name)
    raise ModelError(Path(path).name, None, None,
                     f"unknown model format {suffix!r} (supported: .pb, .onnx, .tflite, .pth)")


__all__ = ["Graph", "ModelError", "Node", "load", "run", "simplify"]
