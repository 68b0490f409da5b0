"""Shared test helpers: where the hardware test vectors are (../shared/testvectors, read in place),
and the backend the kernel tests run on.

Kernel tests take the `drv` fixture and are marked `hw`: on the simulator by default, on a Pi with
`pytest --backend mailbox -m hw` (they skip with the reason where there is no /dev/vcio). A test that
looks inside the simulated firmware asks for it through `simulated_firmware`, which skips on a Pi.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from driver import Driver

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


def pytest_addoption(parser) -> None:
    parser.addoption("--backend", choices=("sim", "mailbox"), default=os.environ.get("VC4KIT_TEST_BACKEND", "sim"),
                     help="where the kernel tests (marker hw, fixture drv) run: the simulator, or a Pi's mailbox")


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if "drv" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.hw)


@pytest.fixture(scope="module")
def drv(request):
    """One driver per test module on the chosen backend; everything it allocated is given back."""
    backend = request.config.getoption("--backend")
    if backend == "mailbox" and not os.path.exists("/dev/vcio"):
        pytest.skip("--backend mailbox: no /dev/vcio here, this is not a Raspberry Pi")
    with Driver(backend=backend) as d:
        yield d


def simulated_firmware(drv):
    """The simulated firmware behind `drv`, or skip: the test counts or reads what only a model shows."""
    firmware = getattr(drv.backend, "firmware", None)
    if firmware is None:
        pytest.skip("reads the simulated firmware's records, which a Pi does not keep")
    return firmware
