"""The mailbox property ABI: the exact request words, the ioctl number, and the checks of every
response (ecosystem.md A4; hello_fft mailbox.c lays out each QPU tag the same way)."""

from __future__ import annotations

import errno

import numpy as np
import pytest

from driver.mailbox import Mailbox, MailboxError, build_message, ioctl_number, parse_response
from simulator.firmware import Firmware
from vc4common import host


def words(buffer: np.ndarray) -> list[int]:
    return [int(w) for w in buffer[:int(buffer[0]) // 4]]


# (tag name, values, the request words a Pi's firmware expects: size, request code, tag, buffer bytes,
#  request bytes, values padded to the buffer, end tag); written out by hand from the ABI table.
REQUESTS = [
    ("allocate_memory", (0x10000, 4096, 0xC),
     [36, 0, 0x3000C, 12, 12, 0x10000, 4096, 0xC, 0]),
    ("lock_memory", (7,), [28, 0, 0x3000D, 4, 4, 7, 0]),
    ("unlock_memory", (7,), [28, 0, 0x3000E, 4, 4, 7, 0]),
    ("release_memory", (7,), [28, 0, 0x3000F, 4, 4, 7, 0]),
    ("execute_qpu", (8, 0x5EAD000, 1, 2000), [40, 0, 0x30011, 16, 16, 8, 0x5EAD000, 1, 2000, 0]),
    ("enable_qpu", (1,), [28, 0, 0x30012, 4, 4, 1, 0]),
    ("execute_code", (0x1000, 1, 2, 3, 4, 5, 6), [52, 0, 0x30010, 28, 28, 0x1000, 1, 2, 3, 4, 5, 6, 0]),
    ("get_firmware_revision", (), [28, 0, 0x1, 4, 0, 0, 0]),
    ("get_board_revision", (), [28, 0, 0x10002, 4, 0, 0, 0]),
    ("get_board_serial", (), [32, 0, 0x10004, 8, 0, 0, 0, 0]),
    ("get_vc_memory", (), [32, 0, 0x10006, 8, 0, 0, 0, 0]),
    ("get_clock_rate", (5,), [32, 0, 0x30002, 8, 4, 5, 0, 0]),
    ("get_temperature", (0,), [32, 0, 0x30006, 8, 4, 0, 0, 0]),
]


@pytest.mark.parametrize("name, values, expected", REQUESTS, ids=[r[0] for r in REQUESTS])
def test_request_words_match_the_abi(name, values, expected):
    buffer = build_message(name, *values)
    assert words(buffer) == expected
    assert buffer.dtype == np.dtype("<u4") and buffer.nbytes == 1024
    assert not buffer[len(expected):].any()


def test_wrong_number_of_values_is_refused():
    with pytest.raises(TypeError, match="allocate_memory takes 3 values"):
        build_message("allocate_memory", 4096)


@pytest.mark.parametrize("size", [1 << 32, 5 << 30, -(1 << 31) - 1])
def test_a_value_that_does_not_fit_a_tag_word_is_refused_not_wrapped(size):
    with pytest.raises(MailboxError, match=f"allocate_memory: size = {size:,} does not fit the tag's 32-bit word"):
        build_message("allocate_memory", size, 4096, 0)


def test_ioctl_numbers_for_32_and_64_bit_userlands():
    import ctypes
    assert ioctl_number(ctypes.c_uint32) == 0xC0046400      # Raspberry Pi OS 32-bit (every Pi Zero)
    assert ioctl_number(ctypes.c_uint64) == 0xC0086400
    assert ioctl_number() == (0xC0086400 if ctypes.sizeof(ctypes.c_void_p) == 8 else 0xC0046400)


def answered(name: str, *values: int, firmware: Firmware | None = None) -> np.ndarray:
    buffer = build_message(name, *values)
    (firmware or Firmware()).property(buffer)
    return buffer


def test_firmware_marks_the_buffer_and_the_tag_answered():
    buffer = answered("get_clock_rate", host.CLOCK_IDS["v3d"])
    assert buffer[1] == 0x80000000
    assert buffer[4] == 0x80000000 | 8
    assert list(buffer[5:7]) == [5, 250_000_000]
    assert parse_response("get_clock_rate", buffer) == (5, 250_000_000)


def test_parse_error_names_the_tag_and_code():
    buffer = build_message("enable_qpu", 1)
    buffer[0] = 6                                   # not a whole number of words
    Firmware().property(buffer)
    assert buffer[1] == 0x80000001
    with pytest.raises(MailboxError, match=r"mailbox enable_qpu: .*could not parse.*0x80000001"):
        parse_response("enable_qpu", buffer)


def test_unanswered_tag_is_an_error():
    buffer = build_message("get_throttled", 0)
    buffer[2] = 0x0003FFFF                           # a tag this firmware does not know
    Firmware().property(buffer)
    assert buffer[1] == 0x80000000 and not buffer[4] & 0x80000000
    with pytest.raises(MailboxError, match="not known to this firmware"):
        parse_response("get_throttled", buffer)


def test_short_response_is_an_error():
    buffer = answered("get_board_serial")
    buffer[4] = 0x80000000 | 4
    with pytest.raises(MailboxError, match="response of 4 bytes, expected 8"):
        parse_response("get_board_serial", buffer)


def test_a_request_not_answered_at_all_is_an_error():
    buffer = build_message("get_board_model")
    with pytest.raises(MailboxError, match=r"did not answer.*0x00000000"):
        parse_response("get_board_model", buffer)


def test_qpu_memory_calls_and_their_failures():
    firmware = Firmware()
    mb = Mailbox(firmware.property)
    handle = mb.allocate_memory(10_000, 4096, host.MEM_FLAG_L1_NONALLOCATING)
    bus = mb.lock_memory(handle)
    assert bus >> 30 == 1 and bus & 0xFFF == 0     # the 0x4 alias, page aligned
    assert firmware.board.vc_memory_base <= bus & 0x3FFFFFFF < firmware.board.sdram_bytes
    mb.unlock_memory(handle)
    mb.release_memory(handle)
    assert firmware.allocations == {}
    with pytest.raises(MailboxError, match="release_memory: the firmware refused"):
        mb.release_memory(handle)
    with pytest.raises(MailboxError, match="allocate_memory: no GPU memory .* gpu_mem"):
        mb.allocate_memory(1 << 30, 4096, 0)
    with pytest.raises(MailboxError, match="lock_memory: handle 99"):
        mb.lock_memory(99)


def test_ioctl_errors_become_mailbox_errors():
    def timed_out(buffer):
        raise OSError(errno.ETIMEDOUT, "timed out")

    def denied(buffer):
        raise OSError(errno.EACCES, "denied")

    with pytest.raises(MailboxError, match="1-second cap.*direct path or split"):
        Mailbox(timed_out).firmware_revision()
    with pytest.raises(MailboxError, match="get_firmware_revision: ioctl failed: Permission denied"):
        Mailbox(denied).firmware_revision()


def test_board_facts_of_the_simulated_board():
    firmware = Firmware()
    mb = Mailbox(firmware.property)
    board = firmware.board
    assert mb.board_revision() == 0x900093
    assert mb.vc_memory() == (board.sdram_bytes - board.gpu_mem_bytes, board.gpu_mem_bytes)
    assert mb.arm_memory() == (0, board.sdram_bytes - board.gpu_mem_bytes)
    assert mb.clock_rate("v3d") == 250_000_000
    assert 0 < mb.temperature() < 85
    assert mb.board_serial() == board.serial
