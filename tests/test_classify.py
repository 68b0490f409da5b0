"""`vc4 classify` and the real MobileNet v1 in one submission.

The command is tried on a small MobileNet-shaped model (fast); the real TF-slim MobileNet v1 (fetched
from the package registry and cached, skipped with the reason when the registry cannot be reached)
runs once on the simulator in strict mode: one execute, every layer's buffer within its rounding
bound of numpy applied to the QPU's own input, and the same top-5 as onnxruntime on the same weights
and the same photo."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

import nnlib
from driver import Driver
from nnlib import classify, images, models
from nnlib import graph as G

pytest.importorskip("tensorboard.compat.proto.graph_pb2")
from .graph_builders import mobilenet  # noqa: E402
from .test_nn_network import BLOCKS, check_every_layer  # noqa: E402

PIL = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("classify")
    model, outputs = mobilenet(folder / "mini.pb", np.random.default_rng(3), 64, BLOCKS)
    pixels = np.random.default_rng(4).integers(0, 256, (80, 96, 3), dtype=np.uint8)
    photo = folder / "photo.png"
    PIL.fromarray(pixels).save(photo)
    return model, outputs, photo


def test_classify_a_photo_with_a_model_file(small, capsys):
    model, outputs, photo = small
    assert classify.main([str(photo), "--model", str(model), "--output", outputs[0], "--json", "--layers"]) == 0
    result = json.loads(capsys.readouterr().out)
    graph = G.simplify(G.load(model, outputs))
    expected = G.run(graph, images.load_image(photo, 64))[outputs[0]]
    assert [entry["class"] for entry in result["top"]] == list(np.argsort(-expected)[:5])
    np.testing.assert_allclose([entry["probability"] for entry in result["top"]], np.sort(expected)[::-1][:5],
                               rtol=1e-4, atol=1e-6)
    assert result["submissions"] == 1 and result["kind"] == "modeled" and result["seconds"] > 0
    assert result["backend_prepare_seconds"] >= 0            # the core compiled (or loaded) before the timed run
    fused = sum(layer["kind"] in ("expand+dw", "pw+pool") for layer in result["layers"])   # two layers as one
    assert len(result["layers"]) == 3 + 2 * len(BLOCKS) - fused
    assert all(layer["seconds"] > 0 for layer in result["layers"])
    assert all(verdict["top_equal"] for verdict in result["cpu_references"])   # the runtimes installed


def test_the_table_names_the_classes_and_the_time(small, capsys):
    model, outputs, photo = small
    assert classify.main([str(photo), "--model", str(model), "--output", outputs[0], "--weights", "float16"]) == 0
    out = capsys.readouterr().out
    assert "probability" in out and "ms on a Pi Zero V3D at 250 MHz (modeled), one submission" in out


def test_float16_activations_from_the_command_line(small, capsys):
    """--activations float16 stores what depthwise layers read as float16: the same top class as the
    CPU run, and a faster modeled time than float32 activations."""
    model, outputs, photo = small
    seconds = {}
    for activations in ("float32", "float16"):
        argv = [str(photo), "--model", str(model), "--output", outputs[0], "--json", "--activations", activations]
        assert classify.main(argv) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["activations"] == activations
        seconds[activations] = result["seconds"]
    expected = G.run(G.simplify(G.load(model, outputs)), images.load_image(photo, 64))[outputs[0]]
    assert result["top"][0]["class"] == int(np.argmax(expected))
    assert seconds["float16"] < seconds["float32"]


@pytest.mark.parametrize("argv, message", [
    (["missing.jpg"], "missing.jpg"),
    (["{photo}", "--model", "nothing.h5"], "unknown model format '.h5'"),
    (["{photo}", "--model", "mobilenet_v9"], "mobilenet_v9: the model: neither a model file nor a known model "
                                             "(mobilenet_v1, mobilenet_v2)"),
])
def test_bad_input_is_one_line_not_a_traceback(small, capsys, argv, message):
    model, _, photo = small
    argv = [a.format(photo=photo) for a in argv]
    if argv[0] == "missing.jpg":
        argv += ["--model", str(model)]
    assert classify.main(argv) == 1
    err = capsys.readouterr().err
    assert "vc4 classify: error:" in err and message in err and "Traceback" not in err


def fetched(name: str) -> tuple:
    """A real model's file and the sample photo, fetched and cached, or a skip saying why not."""
    try:
        return models.fetch(name, quiet=True), models.fetch("grace_hopper", quiet=True)
    except models.FetchError as error:
        pytest.skip(f"the {name} file or the photo cannot be fetched: {error}")


def one_submission_agreeing_with_the_cpu_runtimes(graph: G.Graph, image: np.ndarray, layers: int) -> np.ndarray:
    """A real network run once on the simulator in strict mode: one execute, every layer's buffer
    within its bound, the top-5 of the CPU run of the graph and of both CPU runtimes; its logits."""
    with Driver(backend="sim") as drv, nnlib.compile(copy.deepcopy(graph), drv) as net:
        calls = len(drv.backend.firmware.calls)
        logits, report = net(image)
        assert drv.backend.firmware.calls[calls:].count("execute_qpu") == 1
        check_every_layer(net, graph, image)
    assert len(net.layers) == layers and report.modeled
    expected = G.run(graph, image)[graph.outputs[0]].reshape(-1)
    assert list(np.argsort(-logits)[:5]) == list(np.argsort(-expected)[:5])
    pytest.importorskip("onnxruntime")
    pytest.importorskip("ai_edge_litert")
    verdicts = classify._cpu_verdicts(graph, image, logits, 5)
    assert [v["runtime"].split()[0] for v in verdicts] == ["onnxruntime", "ai_edge_litert"]
    assert all(v["top_equal"] for v in verdicts), verdicts
    # The bound derived from the QPU's arithmetic is checked per layer above (every buffer within
    # (K + 2) u of |W| |x| + |b| of numpy on its own input); carried through the network as a worst
    # case it grows to about 1e18 and says nothing. End to end the runtimes must agree within 1e-3 of
    # the largest logit (seen: v1 8e-5 and 0.0012 of 15.1, well inside the 0.10 between its first two
    # classes; v2 0.0012 of 12.3).
    assert all(v["max_abs_difference"] <= 1e-3 * np.abs(logits).max() for v in verdicts), verdicts
    return logits


def test_the_real_mobilenet_v1_in_one_submission():
    path, photo = fetched("mobilenet_v1")
    graph = G.simplify(G.load(path, list(models.MODELS["mobilenet_v1"].outputs)))
    # 29 layers, of which Conv2d_1_pointwise runs fused with Conv2d_2_depthwise (nnlib/expand.py) and
    # the average pool inside Conv2d_13_pointwise (matmul.GemmKernel.mean)
    logits = one_submission_agreeing_with_the_cpu_runtimes(graph, images.load_image(photo), 29 - 2)
    assert images.imagenet_labels(len(logits))[int(np.argmax(logits))] == "military uniform"
