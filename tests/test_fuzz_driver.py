"""The Driver and the `vc4` command under random arguments (issue 14): every call either works or
raises one of the errors a user can act on, never anything else; nothing is left allocated, and the
QPUs are off once the driver is closed."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from driver import Driver, DriverError
from driver.mailbox import MailboxError
from qpuasm import AssembleError
from vc4cli import main as vc4_main
from vc4common.errors import SimulationError

from .conftest import ROOT

HELLO = (ROOT / "examples" / "hello.qasm").read_text()
SPIN = ":loop\n    brr -, r:loop\n    nop\n    nop\n    nop\n"
EXPECTED = (DriverError, MailboxError, AssembleError, SimulationError)   # MailboxError: "no GPU memory for ..."

numbers = st.one_of(st.integers(-2**40, 2**40), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.none(), st.text(max_size=5))
shapes = st.one_of(numbers, st.lists(numbers, max_size=3), st.tuples(st.integers(-3, 5), st.integers(-3, 5)))
dtypes = st.sampled_from(["float32", "uint8", "int16", "complex64", "object", "U4", "nonsense", None, float, 3])
calls = st.lists(st.one_of(
    st.tuples(st.just("alloc"), shapes, dtypes),
    st.tuples(st.just("free"), st.integers(-1, 4)),
    st.tuples(st.just("execute"), st.sampled_from([HELLO, SPIN, "nop", "mov r0, unif\n", "", "bogus r9"]),
              st.lists(numbers, max_size=3), st.integers(-1, 14),
              st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2, 2)), st.booleans()),
), min_size=1, max_size=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls)
@example([("alloc", 33554433, "float32")])          # more than the GPU memory: MailboxError, nothing held
@example([("alloc", 1_073_741_825, "float32")])      # more than 4 GB: the tag's size word would wrap
def test_random_driver_calls_raise_only_user_errors_and_leak_nothing(sequence):
    drv = Driver(backend="sim")
    firmware = drv.backend.firmware
    arrays = []
    try:
        for call in sequence:
            try:
                if call[0] == "alloc":
                    arrays.append(drv.alloc(call[1], call[2]))
                elif call[0] == "free":
                    if 0 <= call[1] < len(arrays):
                        drv.free(arrays.pop(call[1]))
                else:
                    _, source, uniforms, n_qpus, timeout, direct = call
                    if not isinstance(timeout, bool) and 0 < timeout < math.inf:
                        timeout = min(timeout, 0.002)       # a spinning kernel stops soon
                    drv.execute(source, uniforms=uniforms, n_qpus=n_qpus, timeout=timeout, direct=direct)
            except EXPECTED:
                pass
            # What is allocated is what the caller holds: no block of a failed call stays behind.
            assert len(drv.memory.blocks) == len(arrays) == len(firmware.allocations)
    finally:
        drv.close()
    assert firmware.allocations == {} and not firmware.qpu_enabled


words = st.sampled_from(["--qpus", "--uniform", "--timeout", "--wall-timeout", "--backend", "--format", "-o",
                         "--direct", "--strict", "--force", "-D", "--clock", "buf:4", "buf:x", "0x1ffffffff", "nan",
                         "-1", "0", "1", "12", "13", "sim", "hex", "elf", "A=1", "A", "%", "--json", "--only", ""])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["asm", "disasm", "check", "run", "bench"]), st.sampled_from(["hello", "spin", "bin", "none"]),
       st.lists(words, max_size=5))
def test_random_command_lines_never_give_a_traceback(tmp_path, command, which, rest):
    from driver.driver import _live_drivers

    files = {"hello": tmp_path / "hello.qasm", "spin": tmp_path / "spin.qasm", "bin": tmp_path / "k.bin",
             "none": tmp_path / "missing.qasm"}
    files["hello"].write_text(HELLO)
    files["spin"].write_text(SPIN)
    files["bin"].write_bytes(bytes(range(7)))
    rest = [str(tmp_path / "out") if w == "-o" else w for w in rest]
    if command == "run":
        rest += ["--wall-timeout", "0.5"]           # a random spin stops soon
    if command == "bench":
        rest = ["--only", "nonsense"] + rest        # never a whole benchmark
    out, err = io.TextIOWrapper(io.BytesIO()), io.StringIO()      # stdout with a .buffer, as a terminal's
    open_before = len(_live_drivers)
    code = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = vc4_main([command, str(files[which]), *rest] if command != "bench" else [command, *rest])
        except SystemExit as exit_:                  # argparse's usage errors: exit 2 with a message
            code = exit_.code
    assert code in (0, 1, 2, 130), (command, rest, err.getvalue())
    assert "Traceback" not in err.getvalue()
    assert len(_live_drivers) == open_before         # every driver the command opened was closed


def test_the_fuzz_strategies_reach_the_errors():
    """The generators do produce the bad values the issue lists (so the tests above could fail)."""
    drv = Driver(backend="sim")
    try:
        for shape, dtype in ((-1, "uint32"), (3.5, "float32"), (4, object)):
            with pytest.raises(DriverError):
                drv.alloc(shape, dtype)
        with pytest.raises(DriverError):
            drv.execute(HELLO, uniforms=[0], n_qpus=1, timeout=math.nan)
        assert np.asarray(drv.alloc(2, "uint8")).tolist() == [0, 0]
    finally:
        drv.close()
