"""The first 3x3 convolution computed straight from the image's rows (nnlib/direct.py): the kernel on
the simulator in strict mode against numpy within a bound derived from the QPU's rounding, the
shapes it refuses, and the compiler choosing it for a network's first layer where its model beats
the gather and GEMM (and the simulated time agreeing)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import nnlib
from nnlib import expand, reference
from nnlib.chain import Segment, run_chain
from nnlib.direct import DirectConvPlan
from nnlib.network import Layout, Streams
from nnlib.tasks import free_all, keep

from .test_nn_network import HALF_TINY, U_HALF, U_NUMPY, U_QPU, check_every_layer

RNG = np.random.default_rng(29)


def run_direct(drv, plan: DirectConvPlan, x, w, bias) -> tuple[np.ndarray, object]:
    """The kernel alone: x as the streams its tasks read (network.Streams), the output as NHWC
    pixels out_pitch floats apart."""
    blocks: list = []
    try:
        streams = Streams(plan.input_sources())
        source = keep(blocks, drv.copy(streams.fill(x)))
        assert np.array_equal(streams.values(np.array(source), x.shape), x)
        weights = keep(blocks, drv.copy(plan.weights_block(w, bias)))
        out = keep(blocks, drv.alloc((plan.out_h * plan.out_w // plan.per_word, plan.out_pitch), np.float32))
        out[:] = 0
        scratch = keep(blocks, drv.alloc(plan.scratch_bytes() // 4, np.float32))
        lists = plan.task_lists(source.address, weights.address, out.address, 0, 0, scratch.address)
        report = run_chain(drv, [Segment(plan.kernel(), plan.constants(0, 0), lists, expand.TASK_WORDS, dealt=True)])
        shape = (plan.out_h, plan.out_w, plan.channels)
        got = Layout(*shape, plan.out_pitch, plan.out_w, pairs=plan.pairs).values(np.array(out).reshape(-1), shape)
    finally:
        free_all(drv, blocks)
    return got, report


@pytest.mark.parametrize("height, width, channels, pitch, out, stride, padding, pixels, qpus, out_pitch, pairs", [
    (16, 16, 3, 3, 32, 2, (0, 1, 0, 1), 4, 12, 32, False),      # TensorFlow's padding (MobileNet v1), two groups
    (16, 16, 3, 3, 32, 2, (1, 1, 1, 1), 8, 8, 48, False),       # PyTorch's (v2), into a wider pitch
    (12, 12, 3, 4, 16, 1, (1, 1, 1, 1), 6, 8, 16, False),       # stride 1, a padding channel dropped
    (10, 10, 1, 1, 16, 2, (1, 1, 1, 1), 5, 12, 16, False),      # one channel: a segment of the whole row
    (16, 16, 3, 3, 32, 2, (0, 1, 0, 1), 4, 12, 32, True),       # float16 pixel pairs
    (16, 16, 3, 3, 16, 2, (1, 1, 1, 1), 2, 12, 16, True),       # ... one pair a segment
])
def test_the_direct_convolution_against_numpy(drv, height, width, channels, pitch, out, stride, padding, pixels,
                                              qpus, out_pitch, pairs):
    """Each output within 29 u (27 products and the bias, the QPU's round-toward-zero and numpy's
    rounding) of the convolution of the magnitudes, ReLU6 after; as float16 pairs also within
    their rounding (2^-11 relative, 2^-14 below the half normal range)."""
    plan = DirectConvPlan(height, width, channels, pitch, out, stride, padding, pixels, qpus, out_pitch=out_pitch,
                          pairs=pairs)
    assert plan.fits() is None
    x = RNG.standard_normal((height, width, channels)).astype(np.float32)
    w = (RNG.standard_normal((3, 3, channels, out)) / 3).astype(np.float32)
    bias = (RNG.standard_normal(out) * 0.5).astype(np.float32)
    got, report = run_direct(drv, plan, x, w, bias)
    expected = reference.conv2d(x, w, bias, stride, padding)
    magnitude = reference.conv2d(np.abs(x), np.abs(w), np.abs(bias), stride, padding, relu6=False)
    bound = (9 * channels + 2) * (U_QPU + U_NUMPY) * magnitude
    if pairs:
        bound = bound + U_HALF * (np.abs(expected) + bound) + HALF_TINY
    assert np.all(np.abs(got - expected) <= bound + 1e-7), np.abs(got - expected).max()
    assert report.modeled and report.seconds() > 0


def test_what_it_cannot_take_is_refused():
    assert "4 input channels" in DirectConvPlan.error(4, 4, 2, (0, 1, 0, 1))
    assert "stride 3" in DirectConvPlan.error(3, 3, 3, (1, 1, 1, 1))
    assert "sums do not fit" in DirectConvPlan(16, 16, 3, 3, 32, 1, (1, 1, 1, 1), 8, 8).fits()
    assert "float16 pairs of segments of 5" in DirectConvPlan(20, 20, 3, 3, 32, 2, (1, 1, 1, 1), 5, pairs=True).fits()
    assert DirectConvPlan.best(224, 224, 3, 3, 32, 2, (0, 1, 0, 1), out_pitch=32).fits() is None


def _stem(size: int, channels: int) -> nnlib.graph.Graph:
    """The first convolution (3 -> 32, stride 2) and the depthwise layer that reads it."""
    from nnlib import graph as G
    return G.Graph([G.Node("conv0", "conv2d", ["input", "w0"], {"stride": 2, "padding": "tf_same", "bias": "b0",
                                                                "activation": "relu6"}),
                    G.Node("dw", "depthwise", ["conv0", "w1"], {"stride": 1, "padding": "tf_same", "bias": "b1",
                                                               "activation": "relu6"})],
                   {"w0": (RNG.standard_normal((3, 3, channels, 32)) / 3).astype(np.float32),
                    "b0": RNG.standard_normal(32).astype(np.float32),
                    "w1": RNG.standard_normal((3, 3, 32)).astype(np.float32),
                    "b1": RNG.standard_normal(32).astype(np.float32)},
                   {"input": (size, size, channels)}, ["dw"], "stem.ir")


@pytest.mark.parametrize("activations", ["float32", "float16"])
def test_the_compiler_takes_it_for_the_first_convolution(drv, monkeypatch, activations):
    """A 3x3/2 convolution of a 96 x 96 image: direct (the model's choice), its output the rows
    the depthwise layer after it reads (as float16 pairs with activations="float16"), every layer
    within its bound in strict mode, and faster in the simulated run than the gather and GEMM,
    which run where it is not offered."""
    from nnlib import network
    graph = _stem(96, 3)
    image = RNG.uniform(-1, 1, (96, 96, 3)).astype(np.float32)
    with nnlib.compile(copy.deepcopy(graph), drv, activations=activations) as net:
        assert [layer.kind for layer in net.layers] == ["conv 3x3/s2 direct", "depthwise"]
        assert net.layers[0].plan.pairs == net.tensors["conv0"].layout.pairs == (activations == "float16")
        net(image)
        check_every_layer(net, graph, image)
        direct = net.profile(image)[0].report.seconds()
    monkeypatch.setattr(network.DirectConvLayer, "of", staticmethod(lambda gemm, qpus: None))
    with nnlib.compile(copy.deepcopy(graph), drv, activations=activations) as net:
        assert net.layers[0].kind == "conv 3x3/s2"
        gathered = net.profile(image)[0].report.seconds()
    assert direct < 0.8 * gathered
