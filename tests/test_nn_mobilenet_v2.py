"""MobileNet v2 (issue 15): torch's legacy state dicts read without torch and without running any
code a pickle names; the architecture built from a torchvision state dict, and the same network
through the ONNX importer from a file written the way torch.onnx.export writes it; the residual add
fused into the projecting GEMM; the whole network in one submission on the simulator in strict
mode, tiny (random weights, the real architecture at a quarter of the channels) through three
importers, and real (torchvision's ImageNet weights, fetched and cached, skipped with the reason
when the registry cannot be reached) against onnxruntime and ai-edge-litert."""

from __future__ import annotations

import copy
import json
import pickle
import zipfile

import numpy as np
import pytest

import nnlib
from nnlib import classify, images, models
from nnlib import graph as G
from nnlib.graph import mobilenet_v2, onnx_format, tflite_format, torch_legacy

from .graph_builders import mobilenet_v2_state, save_legacy_torch, torch_style_mobilenet_v2
from .test_classify import fetched, one_submission_agreeing_with_the_cpu_runtimes
from .test_nn_network import check_every_layer, rounded_to_float16

SIZE = 128                    # the smallest input whose 4 x 4 layers still fill a gathered GEMM tile
# Residual blocks: the paper's 10, and at a quarter of the channels features.1 too (its 32 -> 16
# channels are 8 -> 8: torchvision adds when the actual counts match).
TINY_RESIDUALS = 11
PARAMETERS = 3_504_872        # torchvision's MobileNet_V2_Weights.IMAGENET1K_V1: num_params


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny MobileNetV2 state dict and its legacy .pth file."""
    state = mobilenet_v2_state(np.random.default_rng(5))
    path = tmp_path_factory.mktemp("v2") / "tiny.pth"
    save_legacy_torch(state, path)
    return state, path


def test_a_legacy_state_dict_reads_back_bit_for_bit(tiny, tmp_path):
    state, path = tiny
    extra = dict(state, **{"half": np.arange(6, dtype=np.float16).reshape(2, 3), "scalar": np.array(7, np.int64)})
    save_legacy_torch(extra, tmp_path / "extra.pth")
    back = torch_legacy.load_state_dict(tmp_path / "extra.pth")
    assert list(back) == list(extra)
    for name, value in extra.items():
        assert back[name].dtype == value.dtype and back[name].shape == value.shape
        np.testing.assert_array_equal(back[name], value)


def test_views_of_a_storage_read_as_torch_lays_them_out(tmp_path):
    base = np.arange(24, dtype=np.float32)
    save_legacy_torch({"transposed": (base, 1, (3, 4), (1, 6)), "scalar": (base, 5, (), ())}, tmp_path / "v.pth")
    back = torch_legacy.load_state_dict(tmp_path / "v.pth")
    np.testing.assert_array_equal(back["transposed"], [[base[1 + i + 6 * j] for j in range(4)] for i in range(3)])
    assert back["scalar"] == 5
    save_legacy_torch({"past": (base, 20, (2, 4), (4, 1))}, tmp_path / "past.pth")
    with pytest.raises(G.ModelError, match="tensor 'past': it reaches element 27 of a storage of 24"):
        torch_legacy.load_state_dict(tmp_path / "past.pth")


class _Payload:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os
        return os.system, (self.command,)


@pytest.mark.parametrize("at", ["magic", "object"])
def test_a_pickle_that_names_anything_else_is_refused_and_runs_nothing(tmp_path, at):
    sentinel = tmp_path / "ran"
    with open(tmp_path / "evil.pth", "wb") as f:
        if at == "object":
            for obj in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
                pickle.dump(obj, f, protocol=2)
        pickle.dump(_Payload(f"touch {sentinel}"), f, protocol=2)
    with pytest.raises(G.ModelError, match=r"evil.pth: .*asks for (posix|os)\.system.*refused"):
        torch_legacy.load_state_dict(tmp_path / "evil.pth")
    assert not sentinel.exists()


@pytest.mark.parametrize("damage", ["half", "last bytes", "empty", "noise", "zip"])
def test_a_damaged_or_foreign_file_is_one_clear_error(tiny, tmp_path, damage):
    data = tiny[1].read_bytes()
    path = tmp_path / "bad.pth"
    if damage == "zip":                       # torch 1.6 and later save zip archives
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", b"")
    else:
        path.write_bytes({"half": data[:len(data) // 2], "last bytes": data[:-10], "empty": b"",
                          "noise": bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8))}[damage])
    with pytest.raises(G.ModelError, match="bad.pth: the model: (not a legacy torch.save file|truncated or corrupt)"):
        torch_legacy.load_state_dict(path)


def test_the_builder_refuses_what_is_not_a_mobilenet_v2(tiny):
    state, _ = tiny
    with pytest.raises(G.ModelError, match="has no features.1.conv.0.0.weight"):
        mobilenet_v2.build({k: v for k, v in state.items() if not k.startswith("features.1.")})
    with pytest.raises(G.ModelError, match="does not use: extra.weight"):
        mobilenet_v2.build(dict(state, **{"extra.weight": np.zeros(3, np.float32)}))


@pytest.mark.parametrize("pool", ["GlobalAveragePool", "ReduceMean"])
def test_the_builder_and_the_torch_style_onnx_agree_with_onnxruntime(tiny, pool):
    ort = pytest.importorskip("onnxruntime")
    state, _ = tiny
    model = torch_style_mobilenet_v2(state, SIZE, pool)
    image = np.random.default_rng(6).standard_normal((SIZE, SIZE, 3)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"input": image.transpose(2, 0, 1)[None]})[0].reshape(-1)
    built = G.simplify(mobilenet_v2.build(state, size=SIZE))
    imported = G.simplify(onnx_format.from_model(model, "torch.onnx"))
    assert sum(n.op == "add" for n in built.nodes) == sum(n.op == "add" for n in imported.nodes) == TINY_RESIDUALS
    for graph in (built, imported):
        got = G.run(graph, image)[graph.outputs[0]].reshape(-1)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_a_reduce_mean_over_other_axes_is_refused(tiny):
    onnx = pytest.importorskip("onnx")
    model = torch_style_mobilenet_v2(tiny[0], SIZE, "ReduceMean")
    reduce = next(n for n in model.graph.node if n.op_type == "ReduceMean")
    reduce.attribute[0].CopyFrom(onnx.helper.make_attribute("axes", [1]))
    with pytest.raises(G.ModelError, match=r"\(ReduceMean\): ReduceMean over axes \[1\] \(the spatial axes 2 and 3"):
        onnx_format.from_model(model, "torch.onnx")


def _tiny_graph(tiny, tmp_path, kind: str) -> G.Graph:
    state, path = tiny
    if kind == "pth":                          # the .pth holds no input size: the builder's 224 x 224
        graph = G.load(path)
        graph.inputs = {mobilenet_v2.INPUT: (SIZE, SIZE, 3)}
        return G.simplify(graph)
    if kind == "onnx":
        onnx = pytest.importorskip("onnx")
        onnx.save(torch_style_mobilenet_v2(state, SIZE), str(tmp_path / "tiny.onnx"))
        return G.simplify(G.load(tmp_path / "tiny.onnx"))
    written = tflite_format.save(G.simplify(mobilenet_v2.build(state, size=SIZE)), tmp_path / "tiny.tflite")
    return G.simplify(G.load(written))


@pytest.mark.parametrize("kind, weights", [("pth", "float32"), ("pth", "float16"), ("onnx", "float32"),
                                           ("tflite", "float32")])
def test_a_tiny_mobilenet_v2_in_one_submission(drv, tiny, tmp_path, kind, weights):
    graph = _tiny_graph(tiny, tmp_path, kind)
    image = np.random.default_rng(7).standard_normal((SIZE, SIZE, 3)).astype(np.float32)
    firmware = drv.backend.firmware
    with nnlib.compile(copy.deepcopy(graph), drv, weights=weights) as net:
        fused = [layer for layer in net.layers if getattr(layer, "residual", None) is not None]
        assert len(fused) == TINY_RESIDUALS and all(layer.cfg.residual and not layer.relu6 for layer in fused)
        calls = len(firmware.calls)
        logits, report = net(image)
        assert firmware.calls[calls:].count("execute_qpu") == 1
        reference = rounded_to_float16(graph) if weights == "float16" else graph
        check_every_layer(net, reference, image)                 # each layer within its bound
        expected = G.run(reference, image)[graph.outputs[0]]
        # As in test_nn_network.check: 1e-4 of the largest logit end to end, and the same ranking.
        np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
        assert list(np.argsort(-logits)) == list(np.argsort(-expected)) and report.modeled


def test_an_add_that_no_gemm_can_take_is_refused_before_anything_is_allocated(drv, tiny):
    graph = G.simplify(mobilenet_v2.build(tiny[0], size=SIZE))
    projection = next(n for n in graph.nodes if n.op == "add" and n.name.endswith(".add")).inputs[1]
    graph.node(projection).attrs["activation"] = "relu6"       # a ReLU6 before the add: not the kernel's order
    before = len(drv.memory.blocks)
    with pytest.raises(G.ModelError, match=r"node 'features.1.add' \(add\): an add of two activations runs only "
                                           "fused into the GEMM"):
        nnlib.compile(graph, drv)
    assert len(drv.memory.blocks) == before


def test_torchvision_preprocessing(tmp_path):
    from PIL import Image

    Image.new("RGB", (300, 200), (200, 100, 50)).save(tmp_path / "flat.png")
    x = images.load_image(tmp_path / "flat.png", 224, "torchvision")
    expected = (np.array([200, 100, 50], np.float32) / 255 - images.IMAGENET_MEAN) / images.IMAGENET_STD
    assert x.shape == (224, 224, 3)
    np.testing.assert_allclose(x, np.broadcast_to(expected, x.shape), rtol=0, atol=1e-6)
    with pytest.raises(images.ImageError, match="preprocessing 'caffe'"):
        images.load_image(tmp_path / "flat.png", 224, "caffe")


def test_classify_takes_a_pth_file(tiny, tmp_path, capsys):
    from PIL import Image

    state, _ = tiny
    # The .pth holds no input size: the command builds the 224 x 224 network the weights are for.
    pixels = np.random.default_rng(8).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    assert classify.main([str(tmp_path / "photo.png"), "--model", str(tiny[1]), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    graph = G.simplify(G.load(tiny[1]))
    expected = G.run(graph, images.load_image(tmp_path / "photo.png", 224, "torchvision"))[graph.outputs[0]]
    assert result["preprocessing"] == "torchvision" and result["submissions"] == 1
    assert [entry["class"] for entry in result["top"]] == list(np.argsort(-expected)[:5])
    assert all(verdict["top_equal"] for verdict in result["cpu_references"])


def test_the_real_weights_are_torchvisions():
    state = torch_legacy.load_state_dict(fetched("mobilenet_v2")[0])
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    assert sum(v.size for k, v in state.items() if not k.endswith(buffers)) == PARAMETERS
    assert state["classifier.1.weight"].shape == (1000, 1280)


def test_the_real_mobilenet_v2_in_one_submission():
    path, photo = fetched("mobilenet_v2")
    graph = G.simplify(G.load(path))
    image = images.load_image(photo, 224, models.MODELS["mobilenet_v2"].preprocessing)
    # 54 layers, of which the expansions of features.2, 3, 4 and 7 run fused with their depthwise
    # layers (the planner's choice at float32: nnlib/expand.py) and the average pool inside
    # features.18 (matmul.GemmKernel.mean).
    logits = one_submission_agreeing_with_the_cpu_runtimes(graph, image, 54 - 5)
    assert len(logits) == 1000
