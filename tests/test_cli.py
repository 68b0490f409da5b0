"""The `vc4` command line: outputs, and errors as one clear message (never a traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qpuasm.cli import main

from .conftest import ROOT

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

KERNEL = "mov r0, unif\nadd r0, r0, 1\nnop; nop; thrend\nnop\nnop\n"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qpuasm.cli", *args], capture_output=True, text=True, env=ENV)


def test_asm_disasm_check(tmp_path):
    src = tmp_path / "k.qasm"
    src.write_text(KERNEL)
    out = tmp_path / "k.bin"
    assert main(["asm", str(src), "-o", str(out)]) == 0
    assert out.stat().st_size == 40
    hex_out = tmp_path / "k.hex"
    assert main(["asm", str(src), "--format", "hex", "-o", str(hex_out)]) == 0
    for path in (out, hex_out):
        result = run("disasm", str(path))
        assert result.returncode == 0
        assert result.stdout.splitlines()[:2] == ["mov r0, unif", "add r0, r0, 1"]
    result = run("check", str(out))
    assert result.returncode == 0 and "0 errors, 0 warnings" in result.stderr


def test_defines_and_include_paths(tmp_path):
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "k.qinc").write_text(".set K, 3\n")
    src = tmp_path / "k.qasm"
    src.write_text(".include <k.qinc>\nadd r0, r0, K + N\n")
    out = tmp_path / "k.hex"
    assert main(["asm", str(src), "-I", str(tmp_path / "inc"), "-D", "N=2", "--format", "hex", "-o", str(out)]) == 0
    assert out.read_text().startswith("0x0c9c51c0, 0xd0020827")  # add r0, r0, 5: small immediate 5 in raddr_b


@pytest.mark.parametrize("source, expected", [
    ("nop\nadd r0, r1\n", "k.qasm:2:1: error: add takes a destination and two sources"),
    ("mov ra1, r0\nmov r1, ra1\n", "k.qasm:2:1: error: ra1 is read right after it was written"),
])
def test_assembly_errors_print_position_and_caret(tmp_path, source, expected):
    src = tmp_path / "k.qasm"
    src.write_text(source)
    result = subprocess.run([sys.executable, "-m", "qpuasm.cli", "asm", "k.qasm", "-o", "out.bin"],
                            capture_output=True, text=True, cwd=tmp_path, env=ENV)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith(expected)
    assert lines[2].strip() == "^"
    assert "Traceback" not in result.stderr


def test_werror_makes_warnings_fatal(tmp_path):
    src = tmp_path / "k.qasm"
    src.write_text("mov.ifz vpm, r0\n")
    assert run("asm", str(src), "-o", str(tmp_path / "o.bin")).returncode == 0
    result = run("asm", str(src), "-o", str(tmp_path / "o.bin"), "--werror")
    assert result.returncode == 1 and "rule 18" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["asm", "missing.qasm"], "missing.qasm"),
    (["disasm", "missing.bin"], "missing.bin"),
])
def test_missing_files(args, message):
    result = run(*args)
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_bad_binary_input(tmp_path):
    path = tmp_path / "odd.bin"
    path.write_bytes(b"\x01\x02\x03")
    result = run("disasm", str(path))
    assert result.returncode == 1 and "not a multiple of 8" in result.stderr and "Traceback" not in result.stderr


def test_check_reports_hazards_in_binary(tmp_path):
    import qpuasm
    path = tmp_path / "bad.bin"
    path.write_bytes(qpuasm.assemble("mov ra1, r0\nmov r1, ra1", check=False).to_bytes())
    result = run("check", str(path))
    assert result.returncode == 1
    expected = "0x0008: error: ra1 is read right after it was written (no forwarding) (rule 1) [mov r1, ra1]"
    assert expected in result.stdout


# ---- vc4 run and vc4 info (vc4cli) ----------------------------------------------------------------

def vc4(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vc4cli", *args], capture_output=True, text=True,
                          env={**ENV, "COLUMNS": "160"})


def test_run_prints_the_report_and_the_buffer():
    result = vc4("run", str(ROOT / "examples" / "hello.qasm"), "--qpus", "3", "--uniform", "buf:48")
    assert result.returncode == 0, result.stderr
    assert "(modeled)" in result.stdout and "at 250 MHz" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in rows] == ["0", "1", "2"]
    assert "[ 2  4  6  8 10 12 14 16 18 20 22 24 26 28 30 32]" in result.stdout


def test_run_with_value_uniforms_and_a_strict_hazard(tmp_path):
    kernel = tmp_path / "k.qasm"
    # ra0 is read in the instruction after its write: the assembler refuses it, --force runs it,
    # and the strict simulator then stops at it.
    kernel.write_text("mov ra0, unif\nmov r0, ra0\nmov irq, 1\nthrend\nnop\nnop\n")
    result = vc4("run", str(kernel), "--uniform", "7")
    assert result.returncode == 1 and "k.qasm:2:1: error: ra0 is read right after it was written" in result.stderr
    result = vc4("run", str(kernel), "--uniform", "7", "--force", "--strict")
    assert result.returncode == 1 and "rule 1" in result.stderr and "Traceback" not in result.stderr
    result = vc4("run", str(kernel), "--uniform", "0x7", "--force")
    assert result.returncode == 0 and "warning:" in result.stderr


def test_run_rejects_bad_arguments_in_one_line(tmp_path):
    result = vc4("run", str(ROOT / "examples" / "hello.qasm"), "--qpus", "13")
    assert result.returncode == 1 and result.stderr.strip() == "vc4 run: error: n_qpus=13: the V3D has 1 to 12 QPUs"
    result = vc4("run", str(ROOT / "examples" / "hello.qasm"), "--uniform", "bananas")
    assert result.returncode == 2 and "is not a number or buf:N" in result.stderr


def test_info_shows_the_simulated_board():
    result = vc4("info", "--backend", "sim")
    assert result.returncode == 0, result.stderr
    for text in ("Raspberry Pi Zero rev 1.3, BCM2835, 512 MB", "128 MB at 0x18000000", "v3d clock", "250 MHz"):
        assert text in result.stdout


def test_info_without_a_pi_explains():
    result = vc4("info", "--backend", "mailbox")
    if Path("/dev/vcio").exists():
        pytest.skip("this machine has /dev/vcio")
    assert result.returncode == 1
    assert result.stderr.startswith("vc4 info: error: no /dev/vcio") and "backend='sim'" in result.stderr


def test_bench_prints_the_fc_row_float32_and_float16():
    from nnlib import models
    try:
        models.fetch("mobilenet_v1", quiet=True)
    except models.FetchError as error:
        pytest.skip(f"the MobileNet v1 model (its layer shapes) cannot be fetched: {error}")
    result = vc4("bench", "--only", "fc")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("fc 1024->1001"))
    cells = row.split()
    fp32_ms, fp16_ms = float(cells[2]), float(cells[5])
    # The FC layer streams 4 MB of weights: float16 weights take about half the time.
    assert 0.4 < fp16_ms / fp32_ms < 0.6


@pytest.mark.parametrize("command", [["bench", "--only", "fc"], ["classify", "sample"]])
def test_a_negative_tune_is_refused_in_one_line(command):
    result = vc4(*command, "--tune", "-1")
    assert result.returncode == 2
    assert f"vc4 {command[0]}: error: argument --tune: '-1': the number of tilings to measure" in result.stderr
    assert "Traceback" not in result.stderr
