"""Assembler and disassembler throughput (instructions per second).

Corpus: the disassembly of every GPU_FFT shader in ../shared/testvectors (hello_fft_v2 and v3),
concatenated until it holds 100,000 instructions, as the issue suggests. The caches (parsed
lines, encoded and decoded words) are cleared before every run, so each figure includes parsing
every distinct line and encoding/decoding every distinct instruction once. A second corpus of
100,000 random words (mostly distinct, long explicit lines) shows the rate without repetition.
A third figure is a large repeated program (`.rep 1000` of `.rep 1000` of `nop`, a million
instructions) assembled with the hazard checks in a fresh process: its wall time and peak memory.

    python benchmarks/asm_speed.py [--runs 5] [--shared ../shared]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import qpuasm  # noqa: E402
from qpuasm import formats  # noqa: E402

TARGET = 100_000


def gpu_fft_words(shared: Path) -> list[int]:
    words: list[int] = []
    for folder in ("hello_fft_v2", "hello_fft_v3"):
        for path in sorted((shared / "testvectors" / folder).glob("*.hex")):
            words += [int(w) for w in formats.read_hex(path.read_text())]
    if not words:
        raise SystemExit(f"no GPU_FFT hex files under {shared}/testvectors; pass --shared")
    return words


def corpus_text(words: list[int]) -> tuple[str, int]:
    """GPU_FFT disassemblies concatenated until TARGET instructions (labels renamed per copy)."""
    chunks = []
    count = 0
    copy = 0
    while count < TARGET:
        text = qpuasm.disassemble(words)
        chunks.append(text.replace(":L", f":C{copy}_L").replace("r:L", f"r:C{copy}_L"))
        count += len(words)
        copy += 1
    return "\n".join(chunks), count


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def measure(name: str, text: str, words: list[int], runs: int) -> None:
    def assemble():
        qpuasm.clear_caches()
        qpuasm.assemble(text, check=False)

    def disassemble():
        qpuasm.clear_caches()
        qpuasm.disassemble(words)

    asm = [timed(assemble) for _ in range(runs)]
    dis = [timed(disassemble) for _ in range(runs)]
    n = len(words)
    print(f"{name:<34} {n:>8} {n / statistics.median(asm):>14,.0f} {n / statistics.median(dis):>16,.0f}")


LARGE = ".rep i, 1000\n.rep j, 1000\nnop\n.endr\n.endr\nthrend\nnop\nnop\n"
LARGE_RUN = f"""
import json, resource, time, qpuasm
start = time.perf_counter()
program = qpuasm.assemble({LARGE!r})
print(json.dumps([len(program), time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]))
"""


def measure_large(runs: int) -> None:
    results = [json.loads(subprocess.run([sys.executable, "-c", LARGE_RUN], check=True, capture_output=True,
                                         text=True, cwd=Path(__file__).resolve().parent.parent).stdout)
               for _ in range(runs)]
    n = results[0][0]
    seconds = statistics.median(r[1] for r in results)
    peak = statistics.median(r[2] for r in results) / 1024
    print(f"{'.rep 1000 x .rep 1000 nop, checked':<34} {n:>8} {n / seconds:>14,.0f}   "
          f"{seconds:.2f} s, peak {peak:,.0f} MiB (process)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parent.parent.parent / "shared")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}; "
          f"median of {args.runs} runs, measured wall time")
    print(f"{'corpus':<34} {'instrs':>8} {'assemble/s':>14} {'disassemble/s':>16}")
    base = gpu_fft_words(args.shared)
    text, count = corpus_text(base)
    words = [int(w) for w in qpuasm.assemble(text, check=False).words]
    assert len(words) == count
    measure("GPU_FFT disassemblies (100k)", text, words, args.runs)
    rng = random.Random(1)
    random_words = [rng.getrandbits(64) for _ in range(TARGET)]
    measure("random 64-bit words (100k)", qpuasm.disassemble(random_words, labels=False), random_words, args.runs)
    measure_large(args.runs)


if __name__ == "__main__":
    main()
