"""The `vc4` command line, above every package it dispatches to: the assembler's commands
(qpuasm/cli.py), `run` and `info` (the driver), `bench` and `classify` (nnlib).

    vc4 classify IMAGE|sample [--model FILE|mobilenet_v2] [--weights float16] [--layers] [--json]
    vc4 info [--backend sim|mailbox]
    vc4 run KERNEL.qasm [--qpus N] [--uniform VALUE ...] [--backend sim|mailbox] [--strict]

A uniform is a number (decimal, 0x hex, or a float such as 1.5) or `buf:N`, the bus address of a fresh
zeroed buffer of N 32-bit words that is printed after the run.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from driver.board import board_info, info_rows
from driver.diagnose import DriverError, open_backend
from driver.driver import Driver
from driver.mailbox import MailboxError
from qpuasm import cli as asm_cli
from qpuasm import formats
from qpuasm.assembler import assemble_file
from vc4common.errors import SimulationError, SimulationWarning
from vc4common.timing import STALL_REASONS, Report


def _uniform(text: str) -> tuple[str, float | int]:
    if text.startswith("buf:"):
        try:
            words = int(text[4:], 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text}: buf:N wants a whole number of words") from None
        if words < 1:
            raise argparse.ArgumentTypeError(f"{text}: a buffer needs at least one word")
        return "buffer", words
    try:
        value = int(text, 0)
    except ValueError:
        pass
    else:
        if not -(1 << 31) <= value < 1 << 32:
            raise argparse.ArgumentTypeError(f"{text}: a uniform is one 32-bit word (-2^31 .. 2^32-1)")
        return "value", value
    try:
        return "value", float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or buf:N") from None


def console() -> Console:
    """stdout as rich sees it; piped or redirected, wide enough that no table cuts a value (rich
    would assume 80 columns); on a narrow terminal values fold onto a second line, never cut."""
    return Console() if sys.stdout.isatty() else Console(width=240)


def report_table(report: Report, clock_hz: float, title: str = "run") -> Table:
    kind = "modeled" if report.modeled else "measured"
    table = Table(title=f"{title}: {report.cycles:,} cycles = {report.seconds(clock_hz) * 1e6:,.2f} µs at "
                        f"{clock_hz / 1e6:g} MHz ({kind})",
                  caption="busy and stall columns in V3D clock cycles; stalls by what the QPU waited for")
    for name in ("QPU", "instr", "busy", *STALL_REASONS, "end"):
        table.add_column(name, justify="right", overflow="fold")
    for q in report.per_qpu:
        table.add_row(str(q.qpu), f"{q.instructions:,}", f"{q.busy_cycles:,}",
                      *(f"{q.stall_cycles[r]:,}" for r in STALL_REASONS), f"{q.end_cycle:,}")
    return table


def cmd_run(args: argparse.Namespace) -> int:
    out = console()
    path = Path(args.file)
    data = path.read_bytes() if path.is_file() else b""
    if data and formats.detect(data) != "asm":
        program = formats.read_words(data)          # code as `vc4 asm` writes it: bin, hex, C or ELF
    else:
        # The assembler refuses hazard errors with file:line:col; --force leaves them to the run.
        program = assemble_file(args.file, dict(args.define), args.include, check=not args.force)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SimulationWarning)
        with Driver(backend=args.backend, strict=args.strict, wall_timeout=args.wall_timeout) as drv:
            uniforms, buffers = [], []
            for kind, value in args.uniform:
                if kind == "buffer":
                    buffer = drv.alloc(int(value), "uint32")
                    buffers.append(buffer)
                    uniforms.append(buffer.address)
                else:
                    uniforms.append(value)
            report = drv.execute(drv.program(program), uniforms, n_qpus=args.qpus, timeout=args.timeout,
                                 force=args.force, direct=args.direct)
            clock = args.clock * 1e6
            out.print(report_table(report, clock, title=args.file))
            for name, value in report.counters.items():
                out.print(f"  {name} = {value:,}")
            for n, buffer in enumerate(buffers):
                out.print(f"buffer {n} at {buffer.address:#010x}:")
                out.print(np.array2string(np.asarray(buffer).reshape(-1, min(16, buffer.size)),
                                              max_line_width=160, threshold=4096))
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    backend = open_backend(args.backend, need_mem=False)
    try:
        info = {"backend": backend.name, **board_info(backend.mailbox)}
    finally:
        backend.close()
    table = Table(title="VideoCore IV board" + (" (simulated)" if backend.name == "sim" else ""))
    table.add_column("")
    table.add_column("")
    for name, value in info_rows(info):
        table.add_row(name, value)
    console().print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vc4", description="VideoCore IV QPU toolkit")
    sub = parser.add_subparsers(dest="command", required=True)
    asm_cli.add_commands(sub)

    p = sub.add_parser("run", help="run a kernel (assembly, or code as `vc4 asm` writes it) on the simulator or a Pi; "
                                   "print its report")
    p.add_argument("file")
    p.add_argument("--qpus", type=int, default=1, help="QPUs to run it on, 1 to 12 (default 1)")
    p.add_argument("--uniform", type=_uniform, action="append", default=[], metavar="VALUE",
                   help="a uniform (every QPU gets the same list): a number, or buf:N for a buffer of N words")
    p.add_argument("--backend", choices=("auto", "sim", "mailbox"), default="sim")
    p.add_argument("--strict", action="store_true", help="the simulator stops at hazards instead of warning")
    p.add_argument("--force", action="store_true", help="run even if the hazard check finds errors")
    p.add_argument("--timeout", type=float, default=1.0,
                   help="seconds the run may take (default 1): modeled V3D time on the simulator, wall time on a "
                        "Pi; through the mailbox the firmware stops a run after 1 s (see --direct)")
    p.add_argument("--direct", action="store_true",
                   help="submit through the V3D registers instead of the mailbox (no 1-second firmware limit)")
    p.add_argument("--wall-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="on the simulator, stop a run after this much wall time (default 60): a kernel that "
                        "spins until --timeout of modeled time takes minutes to simulate on 12 QPUs")
    p.add_argument("--clock", type=float, default=250.0, help="V3D clock for the report, MHz (default 250)")
    p.add_argument("-D", "--define", type=asm_cli._define, action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("-I", "--include", action="append", default=[], metavar="DIR")
    p.set_defaults(run=cmd_run)

    p = sub.add_parser("info", help="board, firmware, memory split, clocks and temperature")
    p.add_argument("--backend", choices=("auto", "sim", "mailbox"), default="auto")
    p.set_defaults(run=cmd_info)

    p = sub.add_parser("bench", help="the NN kernels' table: time, GFLOPS, %% of peak (modeled on the simulator)")
    from nnlib import bench, classify
    bench.add_arguments(p)
    p.set_defaults(run=bench.run)

    p = sub.add_parser("classify", help="a photo through a whole CNN (MobileNet v1 by default) in one GPU submission")
    classify.add_arguments(p)
    p.set_defaults(run=classify.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asm_cli.run_command(args)
    except (DriverError, MailboxError, SimulationError) as error:
        print(f"vc4 {args.command}: error: {error}", file=sys.stderr)
        return 1
