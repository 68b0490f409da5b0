"""The words every kernel generator produces, as a snapshot (issue 13): a refactor that is meant to
change no code proves it here. Each entry is the sha256 of one generated program's words, for the
single kernels at a few configurations and for a whole compiled network (a MobileNet in miniature).

A change that is meant to change code regenerates the file, and says so in its commit:

    VC4KIT_UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest tests/test_kernel_snapshot.py
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

import qpuasm
from nnlib.depthwise import DepthwiseKernel
from nnlib.direct import DirectConvKernel
from nnlib.expand import ExpandDepthwiseKernel
from nnlib.im2col import Im2colKernel, patch_offsets
from nnlib.matmul import GemmKernel
from nnlib.pool import PoolKernel

from .conftest import DATA

SNAPSHOT = DATA / "kernel_words.tsv"
KERNELS = {
    "gemm default": GemmKernel(),
    "gemm 16 rows, unroll 4, float16, bias, relu6": GemmKernel(rows=16, unroll=4, halves=2, bias=True, relu6=True),
    "gemm 8 rows, one accumulator set, beta*C": GemmKernel(rows=8, overlap=False, accumulate=True),
    "gemm 12 rows, bias + residual": GemmKernel(rows=12, bias=True, residual=True),
    "gemm 30 rows, float16, residual, one set": GemmKernel(rows=30, unroll=2, halves=2, overlap=False, residual=True),
    "depthwise default": DepthwiseKernel(),
    "depthwise stride 2, 7 iterations": DepthwiseKernel(stride=2, iterations=7, left=1, right_limit=2),
    "expand+dw stride 1, K 24 in a pitch of 32, 4 pixels": ExpandDepthwiseKernel(24, 32, 1, 1, 1, 4, 56),
    "expand+dw stride 2, TF padding, 4 pixels": ExpandDepthwiseKernel(16, 16, 2, 0, 0, 4, 56),
    "direct 3x3 stride 2 of 3 channels, TF padding, 7 pixels": DirectConvKernel(3, 3, 2, 0, 0, 7, 112),
    "pool 49 pixels": PoolKernel(49),
    "pool 49 pixels into a 1-row pack": PoolKernel(49, pack_rows=1),
    "im2col 3x3 of 3 channels": Im2colKernel(patch_offsets(3, 3 * 226, 3 * 226, 3, 32)),
    "im2col 3x3 of 3 channels into tiles of 20 rows": Im2colKernel(patch_offsets(3, 3 * 226, 3 * 226, 3, 32), 80),
}


def digest(words) -> str:
    return hashlib.sha256(np.asarray(words, dtype="<u8").tobytes()).hexdigest()


def recorded() -> dict[str, str]:
    if not SNAPSHOT.exists():
        return {}
    rows = [line.split("\t") for line in SNAPSHOT.read_text().splitlines() if line and not line.startswith("#")]
    return {name: value for name, value in rows}


def check(name: str, words) -> None:
    value = digest(words)
    if os.environ.get("VC4KIT_UPDATE_SNAPSHOT"):
        table = recorded()
        table[name] = value
        SNAPSHOT.write_text("# sha256 of the words each kernel generator produces (tests/test_kernel_snapshot.py)\n"
                            + "".join(f"{k}\t{v}\n" for k, v in sorted(table.items())))
        return
    expected = recorded().get(name)
    assert expected is not None, f"no snapshot for {name!r}: regenerate (see this module's docstring)"
    assert value == expected, f"{name}: the generated code changed (regenerate if that is meant)"


@pytest.mark.parametrize("name", KERNELS)
def test_single_kernels_generate_the_recorded_words(name):
    words = qpuasm.assemble(KERNELS[name].source()).words
    assert len(words) > 10
    check(name, words)


def test_a_compiled_network_generates_the_recorded_words(tmp_path):
    pytest.importorskip("tensorboard.compat.proto.graph_pb2")
    import nnlib
    from driver import Driver

    from .graph_builders import mobilenet

    path, _ = mobilenet(tmp_path / "mini.pb", np.random.default_rng(3), 32, [(1, 16), (2, 32), (2, 48)])
    with Driver(backend="sim") as drv:
        for weights in ("float32", "float16"):
            with nnlib.compile(path, drv, weights=weights) as net:
                check(f"MobileNet in miniature, {weights} weights", net.code.words)
        with nnlib.compile(path, drv, activations="float16") as net:       # float16 pixel pairs
            assert any(getattr(tensor.layout, "pairs", False) for tensor in net.tensors.values())
            check("MobileNet in miniature, float16 activations", net.code.words)
