"""The Driver on the simulator's firmware: memory, programs, execute through the mailbox and the direct
path, reports, and that nothing leaks on any way out (faults injected in the simulated firmware)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import qpuasm
from driver import Driver, DriverError, MailboxError, PerformanceCounters, SimulatorBackend
from driver.driver import uniform_words
from simulator.firmware import Firmware
from simulator.machine import SimulationError

from .conftest import ROOT

HELLO = (ROOT / "examples" / "hello.qasm").read_text()
EXPECTED_HELLO = np.array([[2 * i + q for i in range(16)] for q in range(12)], dtype=np.uint32)

# Every QPU adds its two uniforms as floats and stores 16 copies of the sum at the address of its third.
ADD_UNIFORMS = """
        mov r0, unif
        mov r1, unif
        fadd r2, r0, r1
        mov r3, unif
        mov -, mutex                    # VPM row 0 and the DMA store, one QPU at a time
        mov vw_setup, vpm_setup(1, 1, h32(0))
        mov vpm, r2
        mov vw_setup, vdw_setup_0(1, 16, dma_h32(0, 0))
        mov vw_addr, r3
        mov -, vw_wait
        mov mutex, 0
        mov irq, 1
        nop; nop; thrend
        nop
        nop
"""


def spin(count: int) -> str:
    """A program that loops `count` times (4 instructions each) and ends."""
    return (f"mov r0, {count}\n:loop\nsub.setf r0, r0, 1\nbrr.anynz -, r:loop\nnop\nnop\nnop\n"
            "mov irq, 1\nthrend\nnop\nnop\n")


def leaks(firmware: Firmware) -> tuple[int, bool]:
    return firmware.allocated_bytes(), firmware.qpu_enabled


@pytest.fixture
def firmware():
    return Firmware()


@pytest.fixture
def drv(firmware):
    with Driver(backend=SimulatorBackend(firmware)) as d:
        yield d
    assert leaks(firmware) == (0, False)


def test_hello_on_12_qpus_through_the_mailbox(drv):
    out = drv.alloc((12, 16), "uint32")
    report = drv.execute(drv.program(HELLO, filename="hello.qasm"), uniforms=[out.address], n_qpus=12)
    np.testing.assert_array_equal(out, EXPECTED_HELLO)
    assert report.modeled and report.cycles > 0 and len(report.per_qpu) == 12
    assert report.seconds(250e6) == pytest.approx(report.cycles / 250e6)
    assert drv.backend.firmware.calls.count("execute_qpu") == 1


def test_direct_path_gives_the_same_result_without_the_mailbox(drv):
    out = drv.alloc((12, 16), "uint32")
    drv.execute(HELLO, uniforms=[out.address], n_qpus=12, direct=True)
    np.testing.assert_array_equal(out, EXPECTED_HELLO)
    assert "execute_qpu" not in drv.backend.firmware.calls
    assert drv.backend.firmware.registers.completed == 12


def test_preparing_the_simulator_touches_neither_memory_nor_the_firmware(drv):
    out = drv.alloc((12, 16), "uint32")
    out[:] = 7
    calls, report = list(drv.backend.firmware.calls), drv.backend.firmware.v3d.report
    drv.backend.prepare()                      # the core's compile runs on a machine of its own
    assert (out == 7).all() and drv.backend.firmware.calls == calls and drv.backend.firmware.v3d.report is report
    drv.execute(drv.program(HELLO), uniforms=[out.address], n_qpus=12)
    np.testing.assert_array_equal(out, EXPECTED_HELLO)


def test_program_accepts_text_program_and_words(drv):
    program = qpuasm.assemble(HELLO)
    for code in (HELLO, program, program.words, [int(w) for w in program.words]):
        out = drv.alloc((12, 16), "uint32")
        drv.execute(code, uniforms=[out.address], n_qpus=3)
        np.testing.assert_array_equal(out[:3], EXPECTED_HELLO[:3])


def test_per_qpu_uniform_rows_and_float_uniforms(drv):
    out = drv.alloc((4, 16), "float32")
    rows = [[float(q), 0.5, int(out[q].address)] for q in range(4)]
    drv.execute(ADD_UNIFORMS, uniforms=rows, n_qpus=4)
    np.testing.assert_array_equal(out, np.repeat(np.arange(4, dtype=np.float32)[:, None] + 0.5, 16, axis=1))


def test_uniform_words():
    assert uniform_words([1, -1, 1.5], 2).tolist() == [[1, 0xFFFFFFFF, 0x3FC00000]] * 2
    assert uniform_words(np.array([[1.0], [2.0]], dtype=np.float32), 2).tolist() == [[0x3F800000], [0x40000000]]
    assert uniform_words(None, 3).shape == (3, 0)
    with pytest.raises(DriverError, match="one row per QPU"):
        uniform_words(np.zeros((3, 2), dtype=np.uint32), 2)
    with pytest.raises(DriverError, match="neither a number"):
        uniform_words(["x"], 1)


def test_gpu_arrays_know_their_bus_addresses(drv):
    a = drv.alloc((4, 8), "float32")
    assert a.address & 0xFFF == 0 and a.address >> 30 == 1       # page aligned, Pi Zero's 0x4 alias
    assert a[1].address == a.address + 32
    assert a[:, 2].address == a.address + 8
    np.testing.assert_array_equal(a.addresses(), a.address + 4 * np.arange(32).reshape(4, 8))
    b = drv.copy(np.arange(5, dtype=np.int16))
    assert b.dtype == np.int16 and b.tolist() == [0, 1, 2, 3, 4] and b.address != a.address
    # The array is the simulated SDRAM itself: what the host writes, the QPUs read.
    memory = drv.backend.firmware.v3d.memory
    b[2] = 77
    assert memory.read32(b.address) >> 0 & 0xFFFF == 0 and memory.read32(b.address + 4) & 0xFFFF == 77


def test_free_gives_a_block_back(drv):
    a = drv.alloc(1000, "uint8")
    before = drv.backend.firmware.allocated_bytes()
    drv.free(a)
    assert drv.backend.firmware.allocated_bytes() == before - 4096
    with pytest.raises(DriverError, match="no GPU block"):
        drv.free(a)


def test_hazard_errors_refuse_to_run_unless_forced(drv):
    bad = "mov r0, unif\nmov r1, unif\nmov ra0, r0\nadd r1, ra0, r0\nmov irq, 1\nthrend\nnop\nnop\n"
    code = drv.program(qpuasm.assemble(bad, check=False).words)      # raw words: only the driver checks
    assert code.errors
    with pytest.raises(DriverError, match=r"program refused: .*rule 1.*force=True"):
        drv.execute(code, uniforms=[1, 2])
    # force skips the static check; the strict simulator still reports the hazard as it happens.
    with pytest.raises(SimulationError, match=r"QPU0 at 0x[0-9a-f]+ \[add r1, ra0, r0\]: .*\(rule 1\)"):
        drv.execute(code, uniforms=[1, 2], force=True)


def test_timeout_is_reported(drv):
    with pytest.raises(DriverError, match="timed out after 0.001 s"):
        drv.execute(spin(100_000), timeout=0.001)


def test_the_kernels_one_second_cap_is_diagnosed():
    # A board with a 1 MHz V3D clock, so that a short program takes 1.2 s: longer than the kernel
    # waits for the firmware's answer.
    from simulator.firmware import Board
    board = Board(clocks_hz={"arm": 10**9, "core": 4 * 10**8, "v3d": 10**6, "sdram": 4 * 10**8})
    drv = Driver(backend=SimulatorBackend(Firmware(board)))
    with pytest.raises(MailboxError, match="1-second cap.*direct path or split"):
        drv.execute(spin(75_000), timeout=5.0)
    drv.close()
    assert leaks(drv.backend.firmware) == (0, False)


def test_performance_counters_around_a_run(drv):
    out = drv.alloc((12, 16), "uint32")
    names = ["QPU_TOTAL_CLK_CYCLES_EXECUTING_VALID_INSTRUCTIONS", "QPU_TOTAL_IDLE_CLK_CYCLES"]
    with PerformanceCounters(drv.v3d, names) as counters:
        report = drv.execute(HELLO, uniforms=[out.address], n_qpus=12)
    assert counters.values[names[0]] == report.counters[names[0]] > 0
    assert counters.values[names[1]] == report.counters[names[1]]
    # Disabled counters do not count.
    drv.execute(HELLO, uniforms=[out.address], n_qpus=12)
    assert drv.v3d.read("PCTR0") == counters.values[names[0]]


def test_ident_registers_describe_the_v3d(drv):
    ident = drv.v3d.ident()
    assert (ident.technology_version, ident.id_string, ident.qpus, ident.semaphores, ident.vpm_kb) == \
        (2, "V3D", 12, 16, 12)


def test_interrupt_latches_per_qpu(drv):
    out = drv.alloc((12, 16), "uint32")
    drv.v3d.write("DBQITC", 0xFFFF)
    drv.execute(HELLO, uniforms=[out.address], n_qpus=5)
    assert drv.v3d.read("DBQITC") == 0b11111
    drv.v3d.write("DBQITC", 0b101)
    assert drv.v3d.read("DBQITC") == 0b11010


def test_info_reports_the_simulated_board(drv):
    info = drv.info()
    assert info["backend"] == "sim" and info["board_revision"] == 0x900093
    assert info["clocks_hz"]["v3d"] == 250_000_000
    assert info["gpu_memory"][1] == 128 << 20


# ---- faults and every way out --------------------------------------------------------------------------

def test_failing_allocation_leaks_nothing(firmware):
    firmware.faults.add("allocate_memory")
    with pytest.raises(MailboxError, match="gpu_mem"):
        with Driver(backend=SimulatorBackend(firmware)) as drv:
            drv.alloc(16)
    assert leaks(firmware) == (0, False)


def test_failing_lock_releases_the_handle(firmware):
    drv = Driver(backend=SimulatorBackend(firmware))
    drv.alloc(16)
    firmware.faults.add("lock_memory")
    with pytest.raises(MailboxError, match="lock_memory"):
        drv.alloc(16)
    assert len(firmware.allocations) == 1          # only the first, still in use
    drv.close()
    assert leaks(firmware) == (0, False)


def test_exception_inside_with_releases_everything(firmware):
    with pytest.raises(ZeroDivisionError):
        with Driver(backend=SimulatorBackend(firmware)) as drv:
            drv.alloc((100, 100))
            drv.program(HELLO)
            raise ZeroDivisionError
    assert leaks(firmware) == (0, False)


def test_keyboard_interrupt_inside_with_releases_everything(firmware):
    with pytest.raises(KeyboardInterrupt):
        with Driver(backend=SimulatorBackend(firmware)) as drv:
            drv.alloc(64)
            raise KeyboardInterrupt
    assert leaks(firmware) == (0, False)


def test_failing_enable_gives_the_kms_hint(firmware):
    firmware.faults.add("enable_qpu")
    with pytest.raises(MailboxError, match="Unable to enable QPUs: vc4-kms-v3d"):
        Driver(backend=SimulatorBackend(firmware))
    assert leaks(firmware) == (0, False)


def test_closed_driver_refuses_work(firmware):
    drv = Driver(backend=SimulatorBackend(firmware))
    drv.close()
    drv.close()                                   # twice is fine
    with pytest.raises(DriverError, match="closed"):
        drv.alloc(4)


CHILD = """
import atexit, os, signal, sys, time
sys.path.insert(0, {root!r})
from simulator.firmware import Firmware
firmware = Firmware()
# Registered before the driver is imported, so that it runs after the driver's own exit handler.
atexit.register(lambda: print("left", firmware.allocated_bytes(), firmware.qpu_enabled, flush=True))
from driver import Driver, SimulatorBackend
drv = Driver(backend=SimulatorBackend(firmware))
drv.alloc((1000,))
drv.program("nop\\nthrend\\nnop\\nnop\\n")
print("holding", firmware.allocated_bytes(), flush=True)
{ending}
"""


@pytest.mark.parametrize("ending, code", [
    ("os.kill(os.getpid(), signal.SIGTERM); time.sleep(5)", 128 + 15),
    ("sys.exit(0)", 0),
    ("pass", 0),
], ids=["sigterm", "sys.exit", "interpreter-shutdown"])
def test_process_endings_release_everything(ending, code):
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD.format(root=str(ROOT), ending=ending))],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == code, result.stderr
    assert "holding 8192" in result.stdout
    assert "left 0 False" in result.stdout


# ---- backends and board set-up diagnostics -------------------------------------------------------------

def test_unknown_backend():
    with pytest.raises(DriverError, match="backend 'gpu' is not one of auto, mailbox, sim"):
        Driver(backend="gpu")


def test_auto_without_vcio_is_the_simulator(monkeypatch):
    import driver.diagnose as diagnose
    backend = diagnose.open_backend("auto", vcio="/nonexistent/vcio")
    assert backend.name == "sim"


def test_no_vcio_is_diagnosed():
    import driver.diagnose as diagnose
    with pytest.raises(DriverError, match=r"no /nonexistent/vcio: .*hint: on a Pi: sudo mknod"):
        diagnose.open_device("/nonexistent/vcio")


def test_no_permission_for_vcio_is_diagnosed(tmp_path, monkeypatch):
    import driver.diagnose as diagnose
    vcio = tmp_path / "vcio"
    vcio.touch()

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(diagnose, "DeviceBackend", denied)
    with pytest.raises(DriverError, match="no permission to open .*vcio.*video group"):
        diagnose.open_device(str(vcio))


def test_no_permission_for_dev_mem_is_diagnosed(tmp_path, monkeypatch):
    import driver.diagnose as diagnose

    class FakeDevice:
        closed = False

        def __init__(self, vcio, mem):
            pass

        def close(self):
            FakeDevice.closed = True

    monkeypatch.setattr(diagnose, "DeviceBackend", FakeDevice)
    monkeypatch.setattr(diagnose.os, "access", lambda path, mode: False)
    vcio = tmp_path / "vcio"
    vcio.touch()
    with pytest.raises(DriverError, match="no permission to open /dev/mem.*hint: run as root"):
        diagnose.open_device(str(vcio))
    assert FakeDevice.closed


def test_host_info_from_a_device_tree(tmp_path):
    from driver.backend import read_host_info
    soc, axi = tmp_path / "soc", tmp_path / "axi" / "vc_mem"
    soc.mkdir()
    axi.mkdir(parents=True)
    (soc / "ranges").write_bytes(bytes.fromhex("7e000000 3f000000 01000000"))    # a Pi 2/3
    (axi / "reg").write_bytes(bytes.fromhex("3f000000 00c00000 c0000000"))
    info = read_host_info(tmp_path)
    assert (info.peripheral_base, info.peripheral_size, info.sdram_bus_address) == (0x3F000000, 0x01000000,
                                                                                    0xC0000000)
    assert info.memory_flags == 0x4
    pi1 = read_host_info(tmp_path / "absent")
    assert (pi1.peripheral_base, pi1.sdram_bus_address, pi1.memory_flags) == (0x20000000, 0x40000000, 0xC)
