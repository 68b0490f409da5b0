"""nnlib: NN kernels for the QPUs (float32, NHWC), each `(drv, ...) -> (numpy result, report)`.

    import nnlib
    y, report = nnlib.gemm(drv, a, b)                       # report.seconds(): modeled Pi Zero time
    y, report = nnlib.conv_pointwise(drv, x, w, bias)       # 1x1 conv, bias and ReLU6 fused
    y, report = nnlib.conv_depthwise(drv, x, w, bias, stride=2)   # 3x3 depthwise, TF SAME padding
    y, report = nnlib.conv2d(drv, x, w, bias, stride=2)     # 3x3 full conv (MobileNet's first layer)
    y, report = nnlib.global_avg_pool(drv, x)               # (H, W, C) -> (C,)
    nnlib.reference.conv_depthwise(x, w, bias, stride=2)    # numpy references of every op
    nnlib.nonfinite                                          # what NaN and Inf inputs give (no NaN on a QPU)

    net = nnlib.compile("model.pb", drv, weights="float16")  # a whole network: one program
    logits, report = net(image)                              # one submission per image
"""

from . import nonfinite, reference
from .layers import conv2d, conv_depthwise, conv_pointwise, fully_connected, global_avg_pool
from .matmul import gemm
from .network import Network, compile  # noqa: A004

__all__ = ["Network", "compile", "nonfinite", "conv2d", "conv_depthwise", "conv_pointwise", "fully_connected", "gemm",
           "global_avg_pool", "reference"]
