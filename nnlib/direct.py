"""A network's first 3x3 convolution (an image of at most 3 channels in, 16-channel groups out)
computed straight from its input rows on up to 12 QPUs: no patches gathered through memory first
(im2col.py's gather wrote 9 times the image before the GEMM read it back).

It runs as expand.py's fused kernel does, with the input values themselves in place of the expanded
ones: a task is one 16-channel output group and one segment of n output columns, down every output
row. The QPU keeps the group's 27 weight vectors (one per tap and input channel, 16 output channels
each) in regfile B, reads the image through its uniform stream (each channel value handed to all 16
lanes) from a buffer the host writes in the order the task reads it (its segment's columns of every
row, pixel after pixel: DirectConvPlan.input_sources), and adds each value times its tap's weights
to the partial sums of the output pixels whose windows cover it (expand.Schedule: up to three rows
of n sums). A finished output row goes through the QPU's VPM rows to memory as NHWC pixels (a horizontal VDW
store), the rows a depthwise layer reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qpuasm import isa
from qpuasm.builtins import dma_h32, vdw_setup_0

from .expand import (
    LANES,
    RA_FREE,
    RA_LEFT,
    RA_RIGHT,
    RB_FREE,
    TAPS,
    ExpandDepthwisePlan,
    RowStreaming,
    row_start,
)

CHANNELS = ("r0", "r2", "r3")                # a column's input values, one accumulator each
RA_BIAS = f"ra{RA_FREE}"                     # a partial sum starts from the bias


@dataclass(frozen=True)
class DirectConvKernel(RowStreaming):
    """What one compiled variant bakes in."""

    channels: int                            # input channels, at most 3
    pitch: int                               # floats from one input pixel to the next
    stride: int
    pad_top: int
    pad_left: int
    pixels: int                              # n: output pixels of a segment
    iterations: int
    relu6: bool = True
    pairs: bool = False                      # NHWC float16 pixel pairs (network.Layout.pairs)

    SUMS_START = RA_FREE + 1                 # after the bias

    def __post_init__(self) -> None:
        if not 1 <= self.channels <= len(CHANNELS) or self.pitch < self.channels:
            raise ValueError(f"{self.channels} input channels in a pitch of {self.pitch}: 1 to {len(CHANNELS)}")
        if self.pairs and self.pixels % 2:
            raise ValueError(f"float16 pairs of {self.pixels} pixels")
        self.check_geometry()

    def vectors(self) -> list[str]:
        """The weights block's registers: the 27 vectors (DirectConvPlan.weights_block), the bias."""
        if self.sums_end() > isa.REGFILE_SIZE:
            raise ValueError(f"{len(self.schedule.roles)} rows of {self.pixels} sums do not fit regfile A")
        return [self.weight(t, c) for t in range(TAPS) for c in range(self.channels)] + [RA_BIAS]

    def weight(self, tap: int, channel: int) -> str:
        register = tap * self.channels + channel
        assert register < RB_FREE, "27 weight vectors fit regfile B"
        return f"rb{register}"

    bias = RA_BIAS

    def store_setup(self) -> int:
        """n memory rows (pixels, or n / 2 pixel pairs) of 16 words from the QPU's VPM rows."""
        return vdw_setup_0(self.pixels // (2 if self.pairs else 1), LANES, dma_h32(0, 0))

    def input_row(self, row: tuple[tuple[str, int], ...]) -> list[str]:
        """One input row: per column its channel values from the uniform stream (the image's edge
        zeroes them), then their products, channel after channel over the sums they feed, so that
        no two adds in a row write one sum (qpu-isa.md §16 rule 1) unless a column feeds only one."""
        values, drops = CHANNELS[:self.channels], self.pitch - self.channels
        lines = row_start(touch=False)
        pending: tuple[str, str] | None = None        # (the add of the last product, the sum it writes)

        def emit(mul: str | None) -> None:
            nonlocal pending
            lines.append("; ".join(x for x in (pending[0] if pending else None, mul) if x))
            pending = None

        for j in range(self.columns):
            for value in values:
                emit(f"mov {value}, unif")
            for _ in range(drops):
                emit("mov -, unif")
            if j in (0, self.columns - 1):
                if pending:
                    emit(None)                        # its add reads regfile A, as the edge's fmul does
                lines += [f"fmul {v}, {v}, {RA_LEFT if j == 0 else RA_RIGHT}" for v in values]
            targets = self.targets(row, j)
            for c, value in enumerate(values):
                for target, tap, first in targets:
                    if pending and pending[1] == target:
                        emit(None)
                    mul = f"fmul r1, {value}, {self.weight(tap, c)}"
                    add = f"fadd {target}, r1, {RA_BIAS}" if first and c == 0 else f"fadd {target}, {target}, r1"
                    lines.append("; ".join(x for x in (pending[0] if pending else None, mul) if x))
                    pending = (add, target)
        emit(None)
        return lines



@dataclass(frozen=True)
class DirectConvPlan(ExpandDepthwisePlan):
    """The convolution's shapes and tiling (as ExpandDepthwisePlan's, K being the input channels)
    and its output's pixels: out_pitch floats apart, rows out_w pixels long."""

    out_pitch: int = LANES
    pairs: bool = False

    @staticmethod
    def error(k: int, pitch: int, stride: int, padding: tuple[int, int, int, int]) -> str | None:
        if not 1 <= k <= len(CHANNELS):
            return f"{k} input channels (a direct convolution takes 1 to {len(CHANNELS)})"
        why = ExpandDepthwisePlan.error(2, max(2, pitch), stride, padding)
        return why or (f"{k} channels in a pitch of {pitch}" if pitch < k else None)

    def kernel(self) -> DirectConvKernel:
        return DirectConvKernel(self.k, self.pitch, self.stride, self.padding[0], self.padding[2], self.pixels,
                                self.iterations, self.relu6, self.pairs)

    def fits(self) -> str | None:
        if self.pairs and (self.pixels % 2 or self.out_w % 2):
            return f"float16 pairs of segments of {self.pixels} pixels in rows of {self.out_w}"
        return super().fits()

    @property
    def per_word(self) -> int:
        return 2 if self.pairs else 1

    @property
    def vectors_per_group(self) -> int:
        return TAPS * self.k + 1

    def _tiles(self, rows: int, tile_bytes: int) -> tuple[int, int, int]:
        step = 4 * self.out_pitch * self.out_w // self.per_word      # NHWC: the next output row
        return step, step, 1

    def vdw_stride(self, rows: int) -> int:
        return 4 * self.out_pitch - 4 * LANES

    # The input is written by the host, so it comes as the tasks read it: each segment's columns of
    # every row, one block after another. A segment's stream then runs on from one row into the
    # next, where the image's NHWC rows made it jump at every row start and wait for the line it
    # jumped to (a fill from the L2 per input row, 16 % of the layer's time), and no TMU request
    # need touch the next row's lines first (row_start).
    @property
    def row_bytes(self) -> int:
        return 4 * self.pitch * self.kernel().columns

    @property
    def block_words(self) -> int:
        """A segment's block: its columns of every input row."""
        return self.height * self.kernel().columns * self.pitch

    def segment_input(self, x: int, s: int) -> int:
        return x + 4 * s * self.block_words

    def input_words(self) -> int:
        """The blocks, then the lines the uniforms cache prefetches beyond them (timing.py)."""
        from vc4common.timing import param
        return self.segments * self.block_words + LANES * int(param("uniforms_prefetch_lines"))

    def input_sources(self) -> np.ndarray:
        """For each word of the input buffer, the index of the value it holds in the flattened
        (height, width, k) image, or -1 (zero: the columns beyond the image's sides, the pitch's
        padding, the slack)."""
        columns = self.kernel().columns
        first = self.stride * self.pixels * np.arange(self.segments) - self.padding[2]
        x = first[:, None, None, None] + np.arange(columns)[None, None, :, None]
        y = np.arange(self.height)[None, :, None, None]
        c = np.arange(self.pitch)[None, None, None, :]
        shape = (self.segments, self.height, columns, self.pitch)
        inside = np.broadcast_to((x >= 0) & (x < self.width) & (c < self.k), shape)
        index = np.where(inside, (y * self.width + x) * self.k + c, -1).reshape(-1)
        return np.concatenate([index, np.full(self.input_words() - len(index), -1)])

    def out_address(self, out: int, y: int, x0: int, g: int, rows: int, tile_bytes: int) -> int:
        return out + 4 * self.out_pitch * ((y * self.out_w + x0) // self.per_word) + 4 * LANES * g

    def scratch_bytes(self, rows: int = 0) -> int:
        return 4 * self.out_pitch * self.pixels // self.per_word

    def store_rows_clocks(self) -> float:
        """n pixels (or n / 2 pairs) of 64 bytes each."""
        from vc4common.timing import param
        row = max(param("dma_row_clocks"), 4 * LANES / param("vdw_bytes_per_clock"))
        return self.pixels // self.per_word * row

    def weights_block(self, w: np.ndarray, bias) -> np.ndarray:
        """Per group: w[kh, kw, c, 16 g:16 g + 16] for tap 3 kh + kw and input channel c, in that
        order, then the bias."""
        k, c = self.k, self.channels
        padded = np.zeros((self.vectors_per_group, self.c_pad), np.float32)
        padded[:TAPS * k, :c] = np.asarray(w, np.float32).reshape(TAPS * k, c)
        if bias is not None:
            padded[TAPS * k, :c] = np.asarray(bias, np.float32).reshape(-1)
        return np.ascontiguousarray(padded.reshape(self.vectors_per_group, self.groups, LANES).transpose(1, 0, 2))

    @property
    def flops(self) -> int:
        return 2 * TAPS * self.k * self.out_h * self.out_w * self.channels


__all__ = ["DirectConvKernel", "DirectConvPlan"]
