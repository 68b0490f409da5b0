"""The graph IR, the TensorFlow importer and the passes: small graphs written as real GraphDef messages,
checked against nnlib.reference; every pass leaves what the graph computes unchanged; bad models give
one error naming the node and its op. The real MobileNet v1 file is fetched (and cached) when the
package registry is reachable."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from nnlib import graph as G
from nnlib import models, reference
from nnlib.graph import passes, tf

pytest.importorskip("tensorboard.compat.proto.graph_pb2")
from .graph_builders import GraphBuilder  # noqa: E402

RNG = np.random.default_rng(7)


def _f32(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def _bn_params(c):
    return _f32(c, scale=0.2) + 1, _f32(c, scale=0.1), _f32(c, scale=0.1), np.abs(_f32(c)) + 0.5


def _fold(w, gamma, beta, mean, variance, eps=1e-3):
    factor = gamma / np.sqrt(variance + np.float32(eps))
    return (w * factor).astype(np.float32), (beta - mean * factor).astype(np.float32)


@pytest.fixture
def mobilenet_like(tmp_path):
    """conv 3x3/2 + BN + ReLU6, depthwise 3x3 + fused BN + ReLU6, pointwise + bias + ReLU6, average
    pool over the image, squeeze, reshape, FC + bias, softmax: MobileNet's shape in miniature."""
    b = GraphBuilder()
    x = b.placeholder("input", [1, 10, 12, 3])
    w0, bn0 = _f32(3, 3, 3, 16, scale=0.3), _bn_params(16)
    y = b.node("Conv2d_0/Relu6", "Relu6", [b.slim_batch_norm("Conv2d_0/BN", b.conv("Conv2d_0/conv", x, w0, 2), *bn0)])
    w1, bn1 = _f32(3, 3, 16, 1, scale=0.3), _bn_params(16)
    d = b.conv("Conv2d_1_dw/depthwise", y, w1, 1, "DepthwiseConv2dNative")
    fused = b.node("Conv2d_1_dw/BN", "FusedBatchNormV3", [d] + [b.const(f"Conv2d_1_dw/p{i}", p) for i, p in
                                                                enumerate(bn1)], epsilon=1e-3, is_training=False)
    y = b.node("Conv2d_1_dw/Relu6", "Relu6", [fused])
    w2, b2 = _f32(1, 1, 16, 24, scale=0.25), _f32(24, scale=0.1)
    p = b.conv("Conv2d_1_pw/conv", y, w2)
    y = b.node("Conv2d_1_pw/Relu6", "Relu6", [b.node("Conv2d_1_pw/BiasAdd", "BiasAdd", [p, b.const("pw/b", b2)])])
    pool = b.node("AvgPool", "AvgPool", [y], ksize=[1, 5, 6, 1], strides=[1, 1, 1, 1], padding=b"VALID")
    squeeze = b.node("Squeeze", "Squeeze", [pool])
    flat = b.node("Reshape", "Reshape", [squeeze, b.const("shape", np.array([1, 24], np.int32))])
    w3, b3 = _f32(24, 10, scale=0.3), _f32(10, scale=0.1)
    fc = b.node("fc/MatMul", "MatMul", [flat, b.const("fc/w", w3)])
    logits = b.node("fc/add", "Add", [fc, b.const("fc/b", b3)])
    b.node("Softmax", "Softmax", [logits])
    path = b.write(tmp_path / "tiny.pb")
    params = dict(w0=w0, bn0=bn0, w1=w1, bn1=bn1, w2=w2, b2=b2, w3=w3, b3=b3)
    return path, params


def _expected(x, p):
    w0, s0 = _fold(p["w0"], *p["bn0"])
    y = reference.conv2d(x, w0, s0, stride=2)
    w1, s1 = _fold(p["w1"][..., 0], *p["bn1"])
    y = reference.conv_depthwise(y, w1, s1, stride=1)
    y = reference.conv_pointwise(y, p["w2"][0, 0], p["b2"])
    logits = reference.fully_connected(reference.global_avg_pool(y), p["w3"], p["b3"])
    return logits


def test_import_and_simplify_a_mobilenet_shaped_graph(mobilenet_like):
    path, params = mobilenet_like
    graph = G.load(path, outputs=["fc/add", "Softmax"])
    assert graph.inputs == {"input": (10, 12, 3)}
    x = RNG.uniform(-1, 1, (10, 12, 3)).astype(np.float32)
    raw = G.run(graph, x)
    G.simplify(graph)
    ops = Counter(n.op for n in graph.nodes)
    assert ops == {"conv2d": 2, "depthwise": 1, "global_avg_pool": 1, "squeeze": 1, "reshape": 1, "matmul": 1,
                   "softmax": 1}, ops
    layers = [n for n in graph.nodes if n.op in passes.LAYERS]
    assert [n.attrs.get("activation") for n in layers] == ["relu6", "relu6", "relu6", None]
    assert all(n.attrs.get("bias") for n in layers)
    simplified = G.run(graph, x)
    expected = _expected(x, params)
    np.testing.assert_allclose(raw["fc/add"], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(simplified["fc/add"], expected, rtol=1e-4, atol=1e-5)
    e = np.exp(expected - expected.max())
    np.testing.assert_allclose(simplified["Softmax"], e / e.sum(), rtol=1e-5, atol=1e-7)


def test_each_pass_keeps_what_the_graph_computes(mobilenet_like):
    path, _ = mobilenet_like
    graph = G.load(path, outputs=["fc/add"])
    x = RNG.uniform(-1, 1, (10, 12, 3)).astype(np.float32)
    before = G.run(graph, x)["fc/add"]
    counts = [len(graph.nodes)]
    for step in (passes.drop_unused, passes.fold_constants, passes.drop_identities, passes.normalize_weights,
                 passes.fold_batch_norm, passes.fold_constants, passes.fuse_bias_and_activation, passes.fold_padding):
        step(graph)
        np.testing.assert_allclose(G.run(graph, x)["fc/add"], before, rtol=1e-4, atol=1e-5, err_msg=step.__name__)
        counts.append(len(graph.nodes))
    assert counts[-1] < counts[0] / 2


def test_explicit_pad_folds_into_the_convolution(tmp_path):
    b = GraphBuilder()
    x = b.placeholder("input", [1, 7, 7, 4])
    padded = b.node("pad", "Pad", [x, b.const("paddings", np.array([[0, 0], [1, 2], [0, 1], [0, 0]], np.int32))])
    w = _f32(3, 3, 4, 1, scale=0.3)
    b.conv("dw", padded, w, 2, "DepthwiseConv2dNative", padding=b"VALID")
    graph = G.load(b.write(tmp_path / "pad.pb"))
    image = _f32(7, 7, 4)
    before = G.run(graph, image)["dw"]
    G.simplify(graph)
    assert [n.op for n in graph.nodes] == ["depthwise"] and graph.nodes[0].attrs["padding"] == (1, 2, 0, 1)
    np.testing.assert_allclose(G.run(graph, image)["dw"], before, rtol=1e-6)
    np.testing.assert_allclose(before, reference.conv_depthwise(image, w[..., 0], None, 2, (1, 2, 0, 1), False),
                               rtol=1e-5, atol=1e-6)


def test_an_unsupported_op_names_the_node_and_op(tmp_path):
    b = GraphBuilder()
    x = b.placeholder("input", [1, 4, 4, 3])
    b.node("act", "Sigmoid", [x])
    with pytest.raises(G.ModelError, match=r"bad.pb: node 'act' \(Sigmoid\): op Sigmoid is not supported"):
        G.load(b.write(tmp_path / "bad.pb"))


@pytest.mark.parametrize("attrs, what", [
    (dict(strides=[1, 2, 1, 1], padding=b"SAME"), r"strides \[1, 2, 1, 1\]"),
    (dict(strides=[1, 1, 1, 1], padding=b"EXPLICIT"), "padding 'EXPLICIT'"),
    (dict(strides=[1, 1, 1, 1], padding=b"SAME", data_format=b"NCHW"), "data_format NCHW"),
])
def test_unsupported_attributes_name_the_node(tmp_path, attrs, what):
    b = GraphBuilder()
    x = b.placeholder("input", [1, 4, 4, 3])
    b.node("conv", "Conv2D", [x, b.const("w", _f32(3, 3, 3, 8))], **attrs)
    with pytest.raises(G.ModelError, match=r"node 'conv' \(Conv2D\): " + what):
        G.load(b.write(tmp_path / "m.pb"))


def test_truncated_and_foreign_files_are_clear_errors(mobilenet_like, tmp_path):
    path, _ = mobilenet_like
    data = path.read_bytes()
    (tmp_path / "cut.pb").write_bytes(data[: len(data) // 3])
    with pytest.raises(G.ModelError, match=r"cut.pb: (the model: not a TensorFlow GraphDef|node .*: reads|node)"):
        G.load(tmp_path / "cut.pb")
    (tmp_path / "text.pb").write_bytes(b"this is not a model\n" * 10)
    with pytest.raises(G.ModelError, match="text.pb: the model: not a TensorFlow GraphDef"):
        G.load(tmp_path / "text.pb")
    with pytest.raises(G.ModelError, match="missing.pb: the model: cannot read the file"):
        G.load(tmp_path / "missing.pb")
    with pytest.raises(G.ModelError, match=r"unknown model format '\.h5'"):
        G.load(tmp_path / "model.h5")


def test_the_real_mobilenet_v1_imports_and_simplifies():
    try:
        path = models.fetch("mobilenet_v1", quiet=True)
    except models.FetchError as error:
        pytest.skip(f"the MobileNet v1 file cannot be fetched: {error}")
    output = models.MODELS["mobilenet_v1"].outputs[0]
    graph = tf.load(path, outputs=[output])
    assert graph.inputs == {"input": (224, 224, 3)}
    x = np.random.default_rng(0).uniform(-1, 1, (224, 224, 3)).astype(np.float32)
    raw = G.run(graph, x)[output]
    G.simplify(graph)
    ops = Counter(n.op for n in graph.nodes)
    assert ops["conv2d"] == 15 and ops["depthwise"] == 13 and ops["global_avg_pool"] == 1, ops
    assert sum(ops.values()) == 31          # + squeeze and reshape; the retrained head is dropped
    strides = [n.attrs["stride"] for n in graph.nodes if n.op == "depthwise"]
    assert strides == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    simplified = G.run(graph, x)[output]
    assert simplified.shape == (1001,)
    np.testing.assert_allclose(simplified, raw, rtol=1e-4, atol=1e-4)


# ---- ONNX: written for a CPU runtime, read back, and read as PyTorch writes it ---------------------------

onnx = pytest.importorskip("onnx")
from nnlib.graph import onnx_format  # noqa: E402


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        pytest.skip("onnxruntime (the [ref] extra) is not installed")
    return onnxruntime


def test_onnx_written_from_the_ir_runs_in_onnxruntime_and_reads_back(mobilenet_like, tmp_path):
    path, _ = mobilenet_like
    graph = G.simplify(G.load(path, outputs=["fc/add"]))
    x = RNG.uniform(-1, 1, (10, 12, 3)).astype(np.float32)
    expected = G.run(graph, x)["fc/add"]
    written = onnx_format.save(graph, tmp_path / "tiny.onnx")
    session = _onnxruntime().InferenceSession(str(written), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x[None]})[0].reshape(-1), expected, rtol=1e-5, atol=1e-6)
    again = G.simplify(G.load(written))
    np.testing.assert_allclose(G.run(again, x)[again.outputs[0]].reshape(-1), expected, rtol=1e-6, atol=1e-7)


def test_onnx_as_pytorch_exports_it(tmp_path):
    """NCHW input, Conv with group = channels, BatchNormalization, Clip(0, 6), GlobalAveragePool, Flatten,
    Gemm with transB: against nnlib.reference in HWC."""
    h = onnx.helper
    numpy_helper = onnx.numpy_helper
    w0 = _f32(8, 3, 3, 3, scale=0.3)                 # OIHW
    gamma, beta, mean, var = _bn_params(8)
    w1 = _f32(8, 1, 3, 3, scale=0.3)                 # depthwise: group 8
    fc = _f32(5, 8, scale=0.3)                       # Gemm transB: (out, in)
    fc_b = _f32(5, scale=0.1)
    inits = [numpy_helper.from_array(v, n) for n, v in
             [("w0", w0), ("g", gamma), ("b", beta), ("m", mean), ("v", var), ("w1", w1), ("fc", fc), ("fcb", fc_b),
              ("lo", np.float32(0)), ("hi", np.float32(6))]]
    nodes = [h.make_node("Conv", ["x", "w0"], ["c0"], strides=[2, 2], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             h.make_node("BatchNormalization", ["c0", "g", "b", "m", "v"], ["bn0"], epsilon=1e-5),
             h.make_node("Clip", ["bn0", "lo", "hi"], ["r0"]),
             h.make_node("Conv", ["r0", "w1"], ["c1"], group=8, pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             h.make_node("Relu", ["c1"], ["r1"]),
             h.make_node("GlobalAveragePool", ["r1"], ["p"]),
             h.make_node("Flatten", ["p"], ["f"]),
             h.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1)]
    graph = h.make_graph(nodes, "torch-like", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 9, 9])],
                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 5])], inits)
    path = tmp_path / "torch.onnx"
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 13)], ir_version=8), str(path))
    g = G.simplify(G.load(path))
    assert [n.op for n in g.nodes] == ["conv2d", "depthwise", "global_avg_pool", "flatten", "matmul"]
    x = RNG.uniform(-1, 1, (9, 9, 3)).astype(np.float32)
    folded_w0, shift = _fold(w0.transpose(2, 3, 1, 0), gamma, beta, mean, var, eps=1e-5)
    y = reference.conv2d(x, folded_w0, shift, 2, "same")
    y = np.maximum(reference.conv_depthwise(y, w1[:, 0].transpose(1, 2, 0), None, 1, "same", False), 0)
    expected = reference.fully_connected(reference.global_avg_pool(y), fc.T, fc_b)
    np.testing.assert_allclose(G.run(g, x)["y"].reshape(-1), expected, rtol=1e-4, atol=1e-5)
    session = _onnxruntime().InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": x.transpose(2, 0, 1)[None]})[0].reshape(-1), expected,
                               rtol=1e-4, atol=1e-5)


def test_onnx_errors_name_the_node_and_op(tmp_path):
    h = onnx.helper
    node = h.make_node("Sigmoid", ["x"], ["y"], name="gate")
    graph = h.make_graph([node], "bad", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 4, 4])],
                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 4, 4])])
    onnx.save(h.make_model(graph, ir_version=8), str(tmp_path / "bad.onnx"))
    with pytest.raises(G.ModelError, match=r"bad.onnx: node 'gate' \(Sigmoid\): op Sigmoid is not supported"):
        G.load(tmp_path / "bad.onnx")
    (tmp_path / "cut.onnx").write_bytes((tmp_path / "bad.onnx").read_bytes()[:20])
    with pytest.raises(G.ModelError, match="cut.onnx: the model: not an ONNX model"):
        G.load(tmp_path / "cut.onnx")


def _real(name: str):
    try:
        return models.fetch(name, quiet=True)
    except models.FetchError as error:
        pytest.skip(f"{name} cannot be fetched: {error}")


def test_the_real_mobilenet_v1_classifies_a_real_photo_as_onnxruntime_does(tmp_path):
    """The same weights through an independent runtime, on the photo TensorFlow's label_image made famous:
    our importer and passes, written as ONNX, give onnxruntime's logits and top-5, and the top-1 is
    653 "military uniform", label_image's published answer for Grace Hopper."""
    from nnlib import images

    ort = _onnxruntime()
    path, photo = _real("mobilenet_v1"), _real("grace_hopper")
    output = models.MODELS["mobilenet_v1"].outputs[0]
    graph = G.simplify(tf.load(path, outputs=[output]))
    x = images.load_image(photo)
    assert x.shape == (224, 224, 3) and -1 <= x.min() < x.max() <= 1
    ours = G.run(graph, x)[output]
    session = ort.InferenceSession(str(onnx_format.save(graph, tmp_path / "mobilenet_v1.onnx")),
                                   providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"input": x[None]})[0].reshape(-1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    assert list(np.argsort(ours)[-5:]) == list(np.argsort(theirs)[-5:])
    labels = images.imagenet_labels()
    assert len(labels) == 1001 and int(np.argmax(ours)) == 653 and labels[653] == "military uniform"


def test_a_file_that_is_not_a_photo_is_a_clear_error(tmp_path):
    from nnlib import images

    (tmp_path / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(images.ImageError, match="x.jpg: not a photo Pillow can read"):
        images.load_image(tmp_path / "x.jpg")
