"""nnlib: NN kernels for the QPUs (float32, NHWC), each `(drv, ...) -> (numpy result, report)`.

    import nnlib
    y, report = nnlib.gemm(drv, a, b)                       # report.seconds(): modeled Pi Zero time
    y, report = nnlib.conv_pointwise(drv, x, w, bias)       # 1x1 conv, bias and ReLU6 fused
    y, report = nnlib.conv_depthwise(drv, x, w, bias, stride=2)   # 3x3 depthwise, TF SAME padding
    nnlib.reference.conv_depthwise(x, w, bias, stride=2)    # numpy references of every op
"""

from . import reference
from .depthwise import conv_depthwise
from .matmul import conv_pointwise, fully_connected, gemm

__all__ = ["conv_depthwise", "conv_pointwise", "fully_connected", "gemm", "reference"]
