"""SFU results (semantics.md §8.1 policy: exact function rounded to 16 significant bits), run as QPU
programs with the result read from r4 three instructions after the write, against every sample in
../shared/testvectors/sfu. Measured hardware errors reach about 2^-13 relative per SFU operation."""

from __future__ import annotations

import csv
import math
import struct

import pytest

from .conftest import shared_vector
from .test_sim_alu import LOAD, run, store

REGISTER = {"recip": "recip", "recipsqrt": "recipsqrt", "exp2": "exp", "log2": "log"}
TOLERANCE = 2.0 ** -13          # relative, per SFU operation


def bits(value: float) -> int:
    return struct.unpack("<I", struct.pack("<f", value))[0]


def value(pattern: int) -> float:
    return struct.unpack("<f", struct.pack("<I", pattern))[0]


def sfu_program(functions: list[str], square_first: bool = False) -> str:
    """Apply the functions innermost first: write the SFU register, two instructions, read r4.
    `square_first`: square the first function's result before the next one."""
    body = "    mov r2, r0\n"
    for index, name in enumerate(functions):
        body += f"    mov {REGISTER[name]}, r2\n    nop\n    nop\n    mov r2, r4\n"
        if square_first and index == 0:
            body += "    nop; fmul r2, r2, r2\n"
    return LOAD + body + store(["r2"])


def close(ours: float, hardware: float, operations: int) -> bool:
    if math.isinf(hardware) or hardware == 0:
        return ours == hardware
    return abs(ours - hardware) <= operations * TOLERANCE * abs(hardware)


def test_bit_exact_samples():
    with shared_vector("sfu", "sfu_bits_qiita_rpi2.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 27
    for function in ("recip", "recipsqrt"):
        chosen = [r for r in rows if r["function"] == function]
        for start in range(0, len(chosen), 16):
            chunk = chosen[start:start + 16]
            inputs = [int(r["input_bits"], 16) for r in chunk] + [0] * (16 - len(chunk))
            (result,) = run(sfu_program([function]), inputs, inputs, 1)
            for lane, row in enumerate(chunk):
                hardware = value(int(row["hw_output_bits"], 16))
                assert close(value(result[lane]), hardware, 1), (row, hex(result[lane]))
                assert result[lane] & 0xFF == 0       # 16 significant bits, like every measured output


def _decimal_rows():
    with shared_vector("sfu", "sfu_decimal_vc4c_doc.csv").open() as f:
        return list(csv.DictReader(f))


def test_decimal_samples_and_round_trips():
    rows = _decimal_rows()
    by_expression: dict[str, list[dict]] = {}
    for row in rows:
        by_expression.setdefault(row["expression"], []).append(row)
    for expression, chunk_rows in by_expression.items():
        functions = list(reversed(expression.replace("(x)", "").replace(")", "").split("(")))
        # The rows labelled recip(recipsqrt(x)) give |x| (2 -> 2.000263), not sqrt(|x|): the only
        # reading consistent with every row is recip(recipsqrt(x)^2), which is what is run here.
        square = expression == "recip(recipsqrt(x))"
        for start in range(0, len(chunk_rows), 16):
            chunk = chunk_rows[start:start + 16]
            inputs = [bits(float(r["input_decimal"])) for r in chunk] + [0] * (16 - len(chunk))
            (result,) = run(sfu_program(functions, square), inputs, inputs, 1)
            for lane, row in enumerate(chunk):
                hardware = float(row["hw_output_decimal"])
                operations = len(functions) + square
                assert close(value(result[lane]), hardware, operations), (expression, row, value(result[lane]))


@pytest.mark.parametrize("function, x, expected", [
    ("recip", 0.0, math.inf), ("recip", -4.0, -0.25), ("recipsqrt", -4.0, 0.5), ("log2", -8.0, 3.0),
    ("log2", 0.0, -math.inf), ("exp2", 200.0, math.inf), ("exp2", -200.0, 0.0),
])
def test_special_values(function, x, expected):
    (result,) = run(sfu_program([function]), [bits(x)] * 16, [0] * 16, 1)
    assert value(result[0]) == expected
