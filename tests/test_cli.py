"""The `vc4` command line: outputs, and errors as one clear message (never a traceback)."""

from __future__ import annotations

import os
import subprocess
import sys

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
