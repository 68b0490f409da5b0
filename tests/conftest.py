"""Shared test helpers: where the hardware test vectors are (../shared/testvectors, read in place)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SHARED = Path(os.environ.get("VC4KIT_SHARED", ROOT.parent / "shared"))
TESTVECTORS = SHARED / "testvectors"


def shared_vector(*parts: str) -> Path:
    """A file or folder under ../shared/testvectors, or skip the test with the reason."""
    path = TESTVECTORS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"test vectors not present: {path} (set VC4KIT_SHARED to the shared/ folder)")
    return path


def gpu_fft_hex_files() -> list[Path]:
    files = []
    for version in ("hello_fft_v2", "hello_fft_v3"):
        folder = TESTVECTORS / version
        if folder.is_dir():
            files += sorted(folder.glob("*.hex"))
    return files
