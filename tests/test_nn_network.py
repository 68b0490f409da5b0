"""The whole-network compiler (nnlib.compile) on the simulator in strict mode (which raises on any
stale cache read, undefined value or unknown behaviour): MobileNet-shaped networks with random
weights, from each importer's file, against the CPU run of the same graph (nnlib.graph.run), within
a forward error bound derived from the QPU's round-toward-zero arithmetic; one execute per image;
errors before anything is allocated; everything freed on close."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import nnlib
import qpuasm
from nnlib import graph as G
from nnlib.graph import onnx_format, tflite_format
from nnlib.matmul import float16_weights
from qpuasm import isa
from simulator.cache import SLICE_CACHE_BYTES

pytest.importorskip("tensorboard.compat.proto.graph_pb2")
from .conftest import simulated_firmware  # noqa: E402
from .graph_builders import GraphBuilder, mobilenet  # noqa: E402

RNG = np.random.default_rng(16)
# Rounding toward zero: each fmul and fadd of the QPU errs by less than one unit in the last place,
# 2^-23 relative (semantics.md §5); numpy's float32 reference by half of that.
U_QPU, U_NUMPY = 2.0 ** -23, 2.0 ** -24
# A float16 activation (activations="float16"): rounded to nearest (half an ulp of 11 bits, 2^-11
# relative), and below the half normal range (2^-14) to zero (semantics.md §5.3).
U_HALF, HALF_TINY = 2.0 ** -11, 2.0 ** -14
# (stride, channels) blocks after the 3x3/2 stem: 64 pixels wide makes a 32-wide first pointwise
# layer, which float16 weights tile through the gather (32 x 2 accumulators > 50) and float32 tiles
# as whole rows written by the depthwise kernel itself; then 16, 8 and 4 wide.
BLOCKS = [(1, 32), (2, 48), (1, 48), (2, 64), (2, 96)]



@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return mobilenet(tmp_path_factory.mktemp("net") / "mini.pb", np.random.default_rng(3), 64, BLOCKS)


def terms(graph: G.Graph, node: G.Node, shapes: dict) -> int:
    """Products summed for one output value of a layer."""
    if node.op == "global_avg_pool":
        h, w, _ = shapes[node.inputs[0]]
        return h * w
    if node.op not in ("conv2d", "depthwise", "matmul"):
        return 0
    w = graph.constant(node.inputs[1])
    return {"conv2d": int(np.prod(w.shape[:3])), "depthwise": 9, "matmul": w.shape[0]}[node.op]


def evaluate(graph: G.Graph, node: G.Node, args: list[np.ndarray]) -> np.ndarray:
    from nnlib.graph.run import evaluate as run_node

    return run_node(graph, node, args)


def check_every_layer(net, graph: G.Graph, image: np.ndarray) -> None:
    """Each layer's output in its buffer after the one run, against the layer computed by numpy from
    the QPU's own input to it: within (K + 2) u (QPU's and numpy's rounding) of |W| |x| + |b| for a
    layer summing K products (ReLU6 is 1-Lipschitz), elementwise; an output stored as float16 also
    within its rounding, 2^-11 of the value (plus 2^-14, flushed to zero below that). A tensor the
    network never stores (an expansion fused with the depthwise layer that reads it) is computed
    from its own input instead, and its bound carried through the next layer's |W|."""
    shapes = G.passes.shapes(graph)
    absolute = copy.deepcopy(graph)
    absolute.constants = {k: np.abs(v) for k, v in graph.constants.items()}
    unstored: dict[str, tuple[np.ndarray, np.ndarray]] = {}     # name -> (value, error bound)
    checked = 0
    for node in graph.nodes:
        k = terms(graph, node, shapes)
        if not k:
            continue
        source = node.inputs[0]
        x, carried = unstored.get(source, (None, None))
        if x is None:
            x = image if source in graph.inputs else net.activation(source)
        args = [graph.constant(i) if graph.is_constant(i) else x for i in node.inputs]
        expected = evaluate(graph, node, args)
        plain = copy.deepcopy(node)
        plain.attrs.pop("activation", None)
        magnitude = evaluate(absolute, plain, [absolute.constants[i] if graph.is_constant(i) else np.abs(x)
                                               for i in node.inputs])
        skip = residual_of(graph, node)
        if skip is not None:               # the add fused into the GEMM: its tile starts from the skip
            residual = net.activation(skip).reshape(expected.shape)
            expected, magnitude, k = expected + residual, magnitude + np.abs(residual), k + 1
        bound = (k + 2) * (U_QPU + U_NUMPY) * magnitude
        if carried is not None:            # the input's own error, through |W| (no bias)
            plain.attrs.pop("bias", None)
            bound = bound + evaluate(absolute, plain, [absolute.constants[i] if graph.is_constant(i) else carried
                                                       for i in node.inputs])
        if not stored(net, node.name):
            unstored[node.name] = (expected, bound)
            continue
        if half_stored(net, node.name):
            bound = bound + U_HALF * (np.abs(expected) + bound) + HALF_TINY
        got = net.activation(node.name).reshape(expected.shape)
        error = np.abs(got - expected)
        worst = error.argmax()
        assert np.all(error <= bound), f"{node.name}: error {error.max():.3g} beyond {bound.reshape(-1)[worst]:.3g}"
        checked += 1
    assert checked == len(net.layers)


def stored(net, name: str) -> bool:
    """Whether a tensor has a buffer of its own (a fused-away expansion has none)."""
    return net.alias.get(name, name) in net.tensors


def half_stored(net, name: str) -> bool:
    """Whether a tensor's buffer holds float16 pixel pairs."""
    layout = net.tensors[net.alias.get(name, name)].layout
    return getattr(layout, "pairs", False)


def residual_of(graph: G.Graph, node: G.Node) -> str | None:
    """The other input of the add of two activations that is a layer's sole consumer (the compiler
    fuses it into the layer), or None."""
    users = graph.consumers(node.name)
    if len(users) == 1 and users[0].op == "add" and not any(graph.is_constant(i) for i in users[0].inputs):
        return next(i for i in users[0].inputs if i != node.name)
    return None


def rounded_to_float16(graph: G.Graph) -> G.Graph:
    """The graph with the weights the GEMMs use at weights="float16" (matmul.float16_weights;
    depthwise weights and biases stay float32)."""
    out = copy.deepcopy(graph)
    for node in out.nodes:
        if node.op in ("conv2d", "matmul"):
            out.constants[node.inputs[1]] = float16_weights(out.constants[node.inputs[1]])
    return out


def check(net, graph: G.Graph, image: np.ndarray, weights: str) -> np.ndarray:
    """One run: every layer within its bound, and the logits equal to the CPU run of the whole
    graph to within what the layer bounds allow to accumulate (measured at 7e-9 of the bound that
    propagates them through |W|, which is far too loose to test with: instead 1e-4 of the largest
    logit, 50x the observed error) with the same ranking."""
    logits, report = net(image)
    reference = rounded_to_float16(graph) if weights == "float16" else graph
    check_every_layer(net, reference, image)
    expected = _logits(reference, image, graph.node(graph.outputs[0]).inputs[0])     # before the softmax
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    assert np.argmax(logits) == np.argmax(expected)
    assert report.modeled and report.instructions > 0
    return logits


def _logits(graph: G.Graph, image: np.ndarray, name: str) -> np.ndarray:
    g = copy.copy(graph)
    g.outputs = [name]
    return G.run(g, image)[name]


def imported(model, tmp_path, kind: str) -> G.Graph:
    """The model through one importer, simplified: the .pb as written, or re-written as .onnx or
    .tflite and read back."""
    path, outputs = model
    graph = G.simplify(G.load(path, outputs))
    if kind == "onnx":                     # the writers take a simplified graph (fused layers)
        graph = G.simplify(G.load(onnx_format.save(graph, tmp_path / "mini.onnx")))
    elif kind == "tflite":
        graph = G.simplify(G.load(tflite_format.save(graph, tmp_path / "mini.tflite")))
    return graph


@pytest.mark.parametrize("kind", ["pb", "onnx", "tflite"])
@pytest.mark.parametrize("weights", ["float32", "float16"])
def test_a_mobilenet_shaped_network_in_one_submission(drv, model, tmp_path, kind, weights):
    graph = imported(model, tmp_path, kind)
    with nnlib.compile(copy.deepcopy(graph), drv, weights=weights) as net:
        paths = {type(layer).__name__ + ("/direct" if getattr(layer, "direct", False) else "") for layer in net.layers}
        # the first convolution direct from the image, a pointwise layer fused with the depthwise one
        # after it, the other pointwise layers reading packs the depthwise layers write, the last
        # one averaging its output for the pool (no pool layer of its own)
        assert {"DirectConvLayer", "ExpandDepthwiseLayer", "GemmLayer/direct", "DepthwiseLayer"} <= paths
        assert [layer.kind for layer in net.layers][-2:] == ["pw+pool", "fc"] and "PoolLayer" not in paths
        calls = len(simulated_firmware(drv).calls)
        images = [RNG.uniform(-1, 1, (64, 64, 3)).astype(np.float32) for _ in range(2)]
        first, second = (check(net, graph, image, weights) for image in images)
        executes = simulated_firmware(drv).calls[calls:].count("execute_qpu")
    assert executes == 2                                   # one submission per image, the program reused
    assert not np.allclose(first, second)


def test_tune_keeps_each_gemm_layers_fastest_tiling_and_the_same_bits(drv, model, tmp_path):
    """compile(tune=N): every GEMM layer runs the fastest of its tilings as timed on the backend
    (here the simulator's model, on average over a few placements of the run), tilings that change
    no other layer: the same output bits, the network still one execute per image, and no GEMM
    slower than the cost model's choice."""
    graph = imported(model, tmp_path, "pb")
    image = RNG.uniform(-1, 1, (64, 64, 3)).astype(np.float32)
    with nnlib.compile(copy.deepcopy(graph), drv, weights="float16") as plain:
        untuned, plain_report = plain(image)
        plain_plans = [layer.plan for layer in plain.layers if isinstance(layer, nnlib.network.GemmLayer)]
    with nnlib.compile(copy.deepcopy(graph), drv, weights="float16", tune=4) as net:
        gemms = [layer for layer in net.layers if isinstance(layer, nnlib.network.GemmLayer)]
        assert any(len(layer.tilings(4)) > 1 for layer in gemms)
        for layer, planned in zip(gemms, plain_plans, strict=True):
            chosen = layer.plan
            assert (chosen.rows, chosen.k_pad, chosen.m_pad) == (planned.rows, planned.k_pad, planned.m_pad)
            times = {}
            for plan in layer.tilings(4):       # each timed as the tuner does: over several placements
                layer.use(plan)
                times[plan] = nnlib.network._placed_runs(drv, layer)
            layer.use(chosen)
            assert times[chosen] == min(times.values()) and times[chosen] <= times[planned]
        calls = len(simulated_firmware(drv).calls)
        tuned, report = net(image)
        assert simulated_firmware(drv).calls[calls:].count("execute_qpu") == 1
    np.testing.assert_array_equal(tuned, untuned)
    assert report.cycles <= plain_report.cycles * 1.02
    with pytest.raises(ValueError, match="tune=-1"):
        nnlib.compile(copy.deepcopy(graph), drv, tune=-1)


@pytest.mark.parametrize("weights", ["float32", "float16"])
def test_float16_activations_between_the_pointwise_and_depthwise_layers(drv, model, tmp_path, weights):
    """activations="float16": the GEMMs that depthwise layers read store float16 pixel pairs (VPM
    writes of two pixels per row, packed by the regfile-A pack), the depthwise kernels read two
    columns per load through the r4 unpack; every layer within its bound (the float16 outputs
    within their rounding too), in strict mode, one execute; the logits near the float32 run's
    (each pair tensor errs by 2^-11 of its values: 1e-2 of the largest logit, the same top class)."""
    graph = imported(model, tmp_path, "pb")
    reference = rounded_to_float16(graph) if weights == "float16" else graph
    image = RNG.uniform(-1, 1, (64, 64, 3)).astype(np.float32)
    with nnlib.compile(copy.deepcopy(graph), drv, weights=weights, activations="float16") as net:
        halves = [name for name, tensor in net.tensors.items() if getattr(tensor.layout, "pairs", False)]
        # every output a depthwise layer reads (all of even width here: a GEMM's or the direct first
        # convolution's), and nothing else; the rest are never stored (a pointwise layer fused with
        # the depthwise one: nnlib/expand.py)
        read_by_depthwise = {layer.source.name for layer in net.layers if type(layer).__name__ == "DepthwiseLayer"}
        fused = [layer for layer in net.layers if type(layer).__name__ == "ExpandDepthwiseLayer"]
        assert sorted(halves) == sorted(read_by_depthwise) and len(halves) + len(fused) == len(BLOCKS)
        calls = len(simulated_firmware(drv).calls)
        logits, _ = net(image)
        assert simulated_firmware(drv).calls[calls:].count("execute_qpu") == 1
        check_every_layer(net, reference, image)
        words = net.tensors[halves[0]].array.nbytes // 4
        float32 = nnlib.network.Layout(**{**vars(net.tensors[halves[0]].layout), "pairs": False}).words
        assert words < 0.6 * float32                          # half the bytes (and the border rows)
    expected = _logits(reference, image, graph.node(graph.outputs[0]).inputs[0])
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-2 * np.abs(expected).max())
    assert np.argmax(logits) == np.argmax(expected)
    assert np.abs(logits - expected).max() > 0               # the activations really were rounded


def test_litert_runs_the_tflite_the_writer_writes(model, tmp_path):
    """The .tflite written from the graph, run by ai-edge-litert (TensorFlow Lite's runtime), computes
    what the graph computes: the writer (and so the reader's test files) speak real TFLite."""
    interpreter_module = pytest.importorskip("ai_edge_litert.interpreter")
    graph = imported(model, tmp_path, "pb")
    interpreter = interpreter_module.Interpreter(model_path=str(tflite_format.save(graph, tmp_path / "m.tflite")))
    interpreter.allocate_tensors()
    image = RNG.uniform(-1, 1, (64, 64, 3)).astype(np.float32)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image[None])
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).reshape(-1)
    np.testing.assert_allclose(out, G.run(graph, image)["Softmax"], rtol=1e-5, atol=1e-7)


def test_tflite_float16_and_int8_weights_are_dequantised_at_import(drv, model, tmp_path):
    graph = imported(model, tmp_path, "pb")
    conv = next(n for n in graph.nodes if n.op == "conv2d" and n.attrs.get("stride") == 1)
    w = graph.constant(conv.inputs[1])
    half = G.simplify(G.load(tflite_format.save(graph, tmp_path / "h.tflite", weights="float16")))
    w16 = half.constant(half.node(conv.name).inputs[1])
    np.testing.assert_array_equal(w16, w.astype(np.float16).astype(np.float32))
    quantised = G.simplify(G.load(tflite_format.save(graph, tmp_path / "q.tflite", weights="int8")))
    wq = quantised.constant(quantised.node(conv.name).inputs[1])
    scale = np.abs(w).max(axis=(0, 1, 2)) / 127                  # per output channel, symmetric
    assert np.all(np.abs(wq - w) <= scale / 2 * (1 + 1e-5)) and not np.array_equal(wq, w)
    image = RNG.uniform(-1, 1, (64, 64, 3)).astype(np.float32)
    with nnlib.compile(copy.deepcopy(quantised), drv) as net:      # the float equivalent, on the QPUs
        net(image)
        check_every_layer(net, quantised, image)


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_a_damaged_tflite_file_is_one_clear_error(model, tmp_path, damage):
    data = tflite_format.to_bytes(imported(model, tmp_path, "pb"))
    data = data[:len(data) // 2] if damage == "truncated" else b"\x00" * 4 + b"ONNX" + data[8:]
    (tmp_path / "bad.tflite").write_bytes(data)
    with pytest.raises(G.ModelError, match="bad.tflite: the model: (a corrupt or truncated TFLite file|not a TFLite)"):
        G.load(tmp_path / "bad.tflite")


def test_probabilities_and_the_softmax_left_to_the_host(drv, model, tmp_path):
    graph = imported(model, tmp_path, "pb")
    with nnlib.compile(copy.deepcopy(graph), drv) as net:
        image = RNG.uniform(-1, 1, (64, 64, 3)).astype(np.float32)
        logits, _ = net(image)
        probabilities = net.probabilities(logits)
    np.testing.assert_allclose(probabilities, G.run(graph, image)["Softmax"], rtol=1e-4, atol=1e-6)
    assert net.softmax and abs(probabilities.sum() - 1) < 1e-5


def test_close_frees_every_block_and_a_wrong_image_is_refused(drv, model, tmp_path):
    before = len(drv.memory.blocks)
    net = nnlib.compile(imported(model, tmp_path, "pb"), drv)
    assert len(drv.memory.blocks) > before
    with pytest.raises(ValueError, match=r"takes an image of shape \(64, 64, 3\), not \(32, 32, 3\)"):
        net(np.zeros((32, 32, 3), np.float32))
    net.close()
    assert len(drv.memory.blocks) == before


def _two_layer_model(tmp_path, activation: str, branch: bool = False):
    b = GraphBuilder()
    x = b.placeholder("input", [1, 8, 8, 3])
    y = b.node("conv/act", activation, [b.conv("conv", x, RNG.standard_normal((3, 3, 3, 16)).astype(np.float32), 2)])
    w = RNG.standard_normal((1, 1, 16, 16)).astype(np.float32)
    z = b.conv("pw", y, w)
    if branch:                             # a ReLU6 before the add: no GEMM can take the add
        z = b.node("sum", "AddV2", [b.node("pw/act", "Relu6", [z]), y])
    return b.write(tmp_path / "two.pb")


@pytest.mark.parametrize("activation, branch, what", [
    ("Relu", False, r"node 'conv/act' \(.*\): activation 'relu' is not supported by the QPU kernels"),
    ("Relu6", True, r"node 'sum' \(.*\): an add of two activations runs only fused into the GEMM"),
])
def test_what_the_compiler_cannot_run_is_refused_before_anything_is_allocated(drv, tmp_path, activation, branch,
                                                                              what):
    path = _two_layer_model(tmp_path, activation, branch)
    before = len(drv.memory.blocks)
    with pytest.raises(G.ModelError, match=what):
        nnlib.compile(path, drv)
    assert len(drv.memory.blocks) == before


def test_bad_weights_option(drv, model):
    before = len(drv.memory.blocks)
    with pytest.raises(ValueError, match="weights='int8'"):
        nnlib.compile(model[0], drv, weights="int8")
    with pytest.raises(ValueError, match="activations='bfloat16': 'float32' or 'float16'"):
        nnlib.compile(model[0], drv, activations="bfloat16")
    assert len(drv.memory.blocks) == before


def dw_pw_graph(stride: int, size: int, channels: int, out: int) -> G.Graph:
    """A depthwise layer and the pointwise layer that reads it, random weights."""
    return G.Graph([G.Node("dw", "depthwise", ["input", "w_dw"], {"stride": stride, "padding": "tf_same",
                                                                  "bias": "b_dw", "activation": "relu6"}),
                    G.Node("pw", "conv2d", ["dw", "w_pw"], {"stride": 1, "padding": "valid", "bias": "b_pw",
                                                           "activation": "relu6"})],
                   {"w_dw": RNG.standard_normal((3, 3, channels)).astype(np.float32),
                    "b_dw": RNG.standard_normal(channels).astype(np.float32),
                    "w_pw": (RNG.standard_normal((1, 1, channels, out)) * 0.2).astype(np.float32),
                    "b_pw": RNG.standard_normal(out).astype(np.float32)},
                   {"input": (size, size, channels)}, ["pw"], "split.ir")


def pw_dw_pw_graph(stride: int, size: int, channels: int, out: int, padding="tf_same") -> G.Graph:
    """A pointwise layer, the depthwise layer that reads it, the pointwise layer that reads that."""
    graph = dw_pw_graph(stride, size, channels, out)
    graph.nodes[0].inputs[0] = "expand"
    graph.nodes[0].attrs["padding"] = padding
    graph.nodes.insert(0, G.Node("expand", "conv2d", ["input", "w_in"], {"stride": 1, "padding": "valid",
                                                                         "bias": "b_in", "activation": "relu6"}))
    graph.constants["w_in"] = (RNG.standard_normal((1, 1, 24, channels)) * 0.3).astype(np.float32)
    graph.constants["b_in"] = RNG.standard_normal(channels).astype(np.float32)
    graph.inputs = {"input": (size, size, 24)}
    return graph


@pytest.mark.parametrize("size, fused", [(7, True), (8, False)])
@pytest.mark.parametrize("weights", ["float32", "float16"])
def test_the_pool_averaged_by_the_pointwise_layer_it_reads(drv, size, fused, weights):
    """A global average pool over a 1x1 convolution whose output is one tile (49 pixels; 64 are more
    than the 50 accumulators hold): the GEMM sums its tile's rows after ReLU6, scales them and
    stores the means (GemmKernel.mean), the convolution's output never stored. Every layer within
    its bound, the means as pool.py's would be, and fewer modeled clocks than the two layers apart
    (fuse=False, which keeps the pool's own kernel)."""
    graph = dw_pw_graph(1, size, 128, 96)
    graph.nodes.append(G.Node("pool", "global_avg_pool", ["pw"], {}))
    graph.outputs = ["pool"]
    image = RNG.standard_normal((size, size, 128)).astype(np.float32)
    with nnlib.compile(copy.deepcopy(graph), drv, weights=weights) as net:
        assert [layer.kind for layer in net.layers] == ["depthwise", "pw+pool" if fused else "pw"] + ["pool"] * (
            not fused)
        means, report = net(image)
        check_every_layer(net, rounded_to_float16(graph) if weights == "float16" else graph, image)
    with nnlib.compile(copy.deepcopy(graph), drv, weights=weights, fuse=False) as apart:
        assert [layer.kind for layer in apart.layers] == ["depthwise", "pw", "pool"]
        separate, apart_report = apart(image)
    np.testing.assert_array_equal(means, separate)      # the same sums in the same order
    assert (report.cycles < apart_report.cycles) == fused


@pytest.mark.parametrize("stride, size, channels, padding, shift, segments, pixels", [
    (1, 14, 128, "tf_same", 1, 2, 4),      # half rows into 49-row tiles, the window one column early
    (1, 56, 128, "tf_same", 1, 2, 8),      # the wide kernel: 28-row tiles as half rows
    (1, 112, 32, "tf_same", 1, 1, 8),      # the wide kernel: 16-row tiles within a row
    (2, 28, 128, "tf_same", 0, 2, 4),      # no left padding: the window starts at a pair
    (2, 28, 128, (1, 1, 1, 1), 1, 2, 4),   # PyTorch's padding: one column early at stride 2
    (2, 112, 32, "tf_same", 0, 1, 4)])     # 28-row tiles within a row of 56
def test_float16_pairs_into_each_kind_of_depthwise_kernel(drv, stride, size, channels, padding, shift, segments,
                                                          pixels):
    """The GEMM writes float16 pixel pairs for the depthwise layer, which reads two columns per load
    at every stride, left padding and output kind; every layer within its bound, in strict mode."""
    graph = pw_dw_pw_graph(stride, size, channels, 256 if size == 14 else 128, padding)
    image = RNG.standard_normal((size, size, 24)).astype(np.float32)
    with nnlib.compile(copy.deepcopy(graph), drv, activations="float16", fuse=False) as net:
        expand, depthwise, _ = net.layers
        assert expand.plan.pairs and depthwise.plan.pairs and net.tensors["expand"].layout.pairs
        assert depthwise.plan.shift == shift and depthwise.plan.pixels == pixels
        assert len(depthwise.segments(drv, [])) == segments
        net(image)
        check_every_layer(net, graph, image)


@pytest.mark.parametrize("size, channels, out, wide", [(28, 256, 128, True), (112, 32, 64, True),
                                                       (14, 128, 512, False), (56, 64, 128, True),
                                                       (7, 256, 128, True)])
@pytest.mark.parametrize("activations", ["float32", "float16"])
def test_the_wide_depthwise_kernel_where_its_stores_pay(drv, size, channels, out, wide, activations):
    """At stride 1 the depthwise kernel of 8 pixels per iteration (on 8 QPUs: 8 VPM rows each)
    halves the VDW engine's time of its pack stores (8-word memory rows cost what 4-word ones did);
    the pointwise layer after it takes it where its tiles lose nothing the model values: 28-wide
    (whole rows), 112-wide (16-pixel tiles) and 56-wide (28-pixel tiles as half rows, where the
    kernel of 4 pixels writes them as 7 iterations within a row), 7-wide (one iteration of 8 a row,
    7 pixels stored, where the kernel of 4 stores 4 and 3), not 14-wide (its 49-row half-row tiles
    need halves of at least 8 pixels). Every layer within its bound (the first two layers apart:
    fuse=False)."""
    graph = pw_dw_pw_graph(1, size, channels, out)
    image = RNG.standard_normal((size, size, 24)).astype(np.float32)
    with nnlib.compile(copy.deepcopy(graph), drv, activations=activations, fuse=False) as net:
        _, depthwise, _ = net.layers
        assert (depthwise.plan.pixels == 8) == wide and depthwise.qpus == (8 if wide else 12)
        assert depthwise.narrow.store_clocks() > 1.7 * depthwise.wide.store_clocks()   # 28 wide: 7 or 4 stores
        lists = depthwise.segments(drv, [])[0].task_lists()
        assert all(not tasks for tasks in lists[depthwise.qpus:])
        net(image)
        check_every_layer(net, graph, image)
    if wide:                              # faster than the kernel of 4 pixels, in the timing model
        with nnlib.compile(copy.deepcopy(graph), drv, activations=activations, fuse=False) as net:
            net.layers[1].use(net.layers[1].narrow)
            narrow = net.profile(image)[1].report.seconds()
        with nnlib.compile(copy.deepcopy(graph), drv, activations=activations, fuse=False) as net:
            assert net.profile(image)[1].report.seconds() < 0.9 * narrow


@pytest.mark.parametrize("stride, size", [(1, 14), (2, 28)])
def test_a_depthwise_layer_writes_tiles_that_split_its_rows(drv, stride, size):
    """A 14-wide depthwise output written as half rows (two kernels of 7 pixels each) into a GEMM's
    A pack of 49-row tiles (3.5 image rows): one tile's B read where whole rows would take four
    (DepthwisePlan.half_rows); every layer within its bound, in strict mode."""
    graph = dw_pw_graph(stride, size, 128, 512)
    image = RNG.standard_normal((size, size, 128)).astype(np.float32)
    with nnlib.compile(copy.deepcopy(graph), drv) as net:
        depthwise, pointwise = net.layers
        assert pointwise.plan.rows == 49 and depthwise.plan.half_rows(49) == 7
        assert len(depthwise.segments(drv, [])) == 2
        net(image)
        check_every_layer(net, graph, image)
    assert G.simplify(copy.deepcopy(graph)).outputs == ["pw"]


@pytest.mark.parametrize("stride, size, channels", [(1, 56, 128), (2, 112, 64)])
def test_a_depthwise_layer_counts_pack_tiles_within_a_row_at_run_time(drv, stride, size, channels):
    """MobileNet v1's Conv2d_3 and Conv2d_2 pairs: the 56-wide output goes into 28-row pack tiles.
    At stride 2 (4 pixels an iteration) they are 7 iterations each, two to a row: one loop body
    serves every iteration (the tile's end is counted in a register), so the kernel fits the 4 KB
    instruction cache (semantics.md §10) where a tile's 7 iterations unrolled took about 1,100
    instructions. At stride 1 the wide kernel (8 pixels an iteration) writes them as half rows, and
    fits too. Every layer within its bound, in strict mode."""
    graph = dw_pw_graph(stride, size, channels, 128)
    image = RNG.standard_normal((size, size, channels)).astype(np.float32)
    with nnlib.compile(copy.deepcopy(graph), drv) as net:
        depthwise, pointwise = net.layers
        assert pointwise.plan.rows == 28 and depthwise.plan.pixels == (8 if stride == 1 else 4)
        if stride == 2:
            assert depthwise.plan.pack_output(28, pointwise.plan.a_tile_bytes).tile_iterations == 7
        for segment in depthwise.segments(drv, []):
            code_bytes = len(qpuasm.assemble(segment.kernel.source()).words) * isa.INSTRUCTION_BYTES
            assert code_bytes <= SLICE_CACHE_BYTES
        net(image)
        check_every_layer(net, graph, image)
