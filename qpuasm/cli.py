"""The assembler's part of the `vc4` command line: asm, disasm, check (vc4cli adds run, info,
bench and classify). Errors print one clear message, never a traceback."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import formats
from .assembler import assemble_file
from .checks import check, format_diagnostic
from .disasm import disassemble
from .instr import DisassembleError
from .program import AssembleError


def _define(text: str) -> tuple[str, object]:
    name, _, value = text.partition("=")
    if not name.isidentifier():
        raise argparse.ArgumentTypeError(f"-D wants NAME=VALUE, not {text!r}")
    return name, value if value else 1


def _read_code(path: str, fmt: str | None) -> object:
    """The words of a file in any format `vc4 asm` writes, detected by content; assembly source is
    assembled (so `vc4 check k.qasm` checks the program, not the text's bytes)."""
    data = Path(path).read_bytes()
    fmt = fmt or formats.detect(data)
    if fmt == "asm":
        return assemble_file(path, check=False).words
    return formats.read_words(data, fmt)


def cmd_asm(args: argparse.Namespace) -> int:
    program = assemble_file(args.file, dict(args.define), args.include, werror=args.werror)
    for place, diag in program.diagnostics:
        print(f"{place.filename}:{place.line}:{place.column}: {format_diagnostic(diag, with_address=False)}",
              file=sys.stderr)
    name = Path(args.file).stem
    data = formats.write(program, args.format, name)
    if args.output in (None, "-"):
        if args.format in ("bin", "elf") and sys.stdout.isatty():
            raise SystemExit("vc4 asm: error: binary output to a terminal; use -o FILE or --format hex")
        sys.stdout.buffer.write(data)
    else:
        Path(args.output).write_bytes(data)
    return 0


def cmd_disasm(args: argparse.Namespace) -> int:
    words = _read_code(args.file, args.format)
    sys.stdout.write(disassemble(words))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    words = _read_code(args.file, args.format)
    diagnostics = check(words)
    for diag in diagnostics:
        print(f"{args.file}: {format_diagnostic(diag)}")
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = len(diagnostics) - errors
    print(f"{len(words)} instructions, {errors} errors, {warnings} warnings", file=sys.stderr)
    return 1 if errors or (warnings and args.werror) else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vc4", description="VideoCore IV QPU toolkit")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def add_commands(sub) -> None:
    """The assembler's commands, for the `vc4` parser (the driver's CLI adds its own beside them)."""
    p = sub.add_parser("asm", help="assemble a .qasm file")
    p.add_argument("file")
    p.add_argument("-o", "--output", help="output file (default: standard output)")
    p.add_argument("--format", choices=formats.FORMATS, default="bin")
    p.add_argument("-D", "--define", type=_define, action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("-I", "--include", action="append", default=[], metavar="DIR")
    p.add_argument("--werror", action="store_true", help="treat hazard warnings as errors")
    p.set_defaults(run=cmd_asm)

    p = sub.add_parser("disasm", help="disassemble binary or hex QPU code")
    p.add_argument("file")
    p.add_argument("--format", choices=formats.FORMATS, help="input format (default: detected from the content)")
    p.set_defaults(run=cmd_disasm)

    p = sub.add_parser("check", help="run the hazard checks on binary or hex QPU code")
    p.add_argument("file")
    p.add_argument("--format", choices=formats.FORMATS, help="input format (default: detected from the content)")
    p.add_argument("--werror", action="store_true", help="exit non-zero on warnings too")
    p.set_defaults(run=cmd_check)


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser().parse_args(argv))


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command; the errors a user can cause print one line and give exit code 1."""
    try:
        return args.run(args)
    except AssembleError as exc:
        print(exc.format(), file=sys.stderr)
    except DisassembleError as exc:
        print(f"{args.file}: error: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"vc4 {args.command}: error: {exc.filename or getattr(args, 'file', '')}: {exc.strerror}",
              file=sys.stderr)
    except KeyboardInterrupt:
        print("vc4: interrupted", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
