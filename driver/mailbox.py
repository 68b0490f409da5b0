"""The firmware's mailbox property interface: messages, the tag table's calls, and /dev/vcio.

A property message is little-endian u32 words (ecosystem.md A4):
    [total bytes, MBOX_REQUEST, tag, value buffer bytes, request bytes, values..., MBOX_END_TAG]
The firmware answers in place: word 1 becomes MBOX_SUCCESS (or MBOX_PARSE_ERROR), the tag's
request-length word gets MBOX_TAG_RESPONSE | response bytes, and the values are overwritten.
Every number (tags, codes, layouts) comes from host.MAILBOX_TAGS; this module builds, checks and sends.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable

import numpy as np
from ioctl_opt import IOWR

from vc4common import host

BUFFER_WORDS = 256                       # 1 KB, as py-videocore uses: room for any single tag
DEVICE = "/dev/vcio"


class MailboxError(RuntimeError):
    """A property call the firmware refused or answered wrongly; names the tag and the code."""

    def __init__(self, tag: str, message: str, code: int | None = None):
        self.tag, self.code = tag, code
        detail = f" (code {code:#010x})" if code is not None else ""
        super().__init__(f"mailbox {tag}: {message}{detail}")


def ioctl_number(pointer_type: type = ctypes.c_void_p) -> int:
    """IOCTL_MBOX_PROPERTY = _IOWR(100, 0, char *): 0xC0046400 on a 32-bit userland (a Pi Zero's
    Raspberry Pi OS), 0xC0086400 on a 64-bit one. Pass ctypes.c_uint32 for the 32-bit value."""
    return IOWR(host.MBOX_IOCTL_MAJOR, 0, pointer_type)


def build_message(name: str, *values: int) -> np.ndarray:
    """The request buffer of one tag, padded to BUFFER_WORDS words."""
    tag = host.MAILBOX_TAGS[name]
    if len(values) != len(tag.request):
        raise TypeError(f"{name} takes {len(tag.request)} values ({', '.join(tag.request) or 'none'}), "
                        f"got {len(values)}")
    for field, value in zip(tag.request, values, strict=True):
        if not -(1 << 31) <= value <= 0xFFFFFFFF:          # a tag's values are 32-bit words
            raise MailboxError(name, f"{field} = {value:,} does not fit the tag's 32-bit word")
    value_words = tag.buffer_bytes // 4
    body = [tag.tag, tag.buffer_bytes, 4 * len(tag.request), *values, *[0] * (value_words - len(values)),
            host.MBOX_END_TAG]
    words = [0, host.MBOX_REQUEST, *body]
    words[0] = 4 * len(words)
    buffer = np.zeros(BUFFER_WORDS, dtype="<u4")
    buffer[:len(words)] = [w & 0xFFFFFFFF for w in words]
    return buffer


def parse_response(name: str, buffer: np.ndarray) -> tuple[int, ...]:
    """The response values of a one-tag message, after checking every word the firmware set."""
    tag = host.MAILBOX_TAGS[name]
    code = int(buffer[1])
    if code == host.MBOX_PARSE_ERROR:
        raise MailboxError(name, "the firmware could not parse the request", code)
    if code != host.MBOX_SUCCESS:
        raise MailboxError(name, "the firmware did not answer the request", code)
    length = int(buffer[4])
    if not length & host.MBOX_TAG_RESPONSE:
        raise MailboxError(name, f"tag {tag.tag:#x} is not known to this firmware", length)
    response_bytes = length & ~host.MBOX_TAG_RESPONSE
    if response_bytes < 4 * len(tag.response):
        raise MailboxError(name, f"response of {response_bytes} bytes, expected {4 * len(tag.response)}", length)
    return tuple(int(w) for w in buffer[5:5 + len(tag.response)])


class Mailbox:
    """Property calls over a transport: a function that hands the buffer to the firmware in place
    (the ioctl on a Pi, the simulator's firmware in CI)."""

    def __init__(self, transport: Callable[[np.ndarray], None]):
        self.transport = transport

    def call(self, name: str, *values: int) -> tuple[int, ...]:
        buffer = build_message(name, *values)
        try:
            self.transport(buffer)
        except OSError as error:
            if error.errno == errno.ETIMEDOUT:
                raise MailboxError(name, "the kernel gave up waiting for the firmware (its 1-second cap); "
                                         "use the direct path or split the work") from None
            raise MailboxError(name, f"ioctl failed: {os.strerror(error.errno or 0)}") from None
        return parse_response(name, buffer)

    # ---- the calls, with their checks ----------------------------------------------------------------

    def firmware_revision(self) -> int:
        return self.call("get_firmware_revision")[0]

    def board_revision(self) -> int:
        return self.call("get_board_revision")[0]

    def board_model(self) -> int:
        return self.call("get_board_model")[0]

    def board_serial(self) -> int:
        low, high = self.call("get_board_serial")
        return high << 32 | low

    def arm_memory(self) -> tuple[int, int]:
        base, size = self.call("get_arm_memory")
        return base, size

    def vc_memory(self) -> tuple[int, int]:
        base, size = self.call("get_vc_memory")
        return base, size

    def clock_rate(self, clock: str) -> int:
        return self.call("get_clock_rate", host.CLOCK_IDS[clock])[1]

    def temperature(self) -> float:
        return self.call("get_temperature", 0)[1] / 1000

    def throttled(self) -> int:
        return self.call("get_throttled", 0)[0]

    def allocate_memory(self, size: int, alignment: int, flags: int) -> int:
        handle = self.call("allocate_memory", size, alignment, flags)[0]
        if handle == 0:
            raise MailboxError("allocate_memory", f"no GPU memory for {size} bytes: raise gpu_mem in "
                                                  "/boot/config.txt (128 or more) or allocate less")
        return handle

    def lock_memory(self, handle: int) -> int:
        address = self.call("lock_memory", handle)[0]
        if address == 0:
            raise MailboxError("lock_memory", f"handle {handle} could not be locked")
        return address

    def unlock_memory(self, handle: int) -> None:
        self._status("unlock_memory", handle)

    def release_memory(self, handle: int) -> None:
        self._status("release_memory", handle)

    def enable_qpu(self, enable: bool) -> None:
        status = self.call("enable_qpu", int(enable))[0]
        if status != 0:
            hint = (" (Unable to enable QPUs: vc4-kms-v3d/vc4-fkms-v3d owns the V3D; remove that dtoverlay from "
                    "/boot/config.txt and reboot)" if enable else "")
            raise MailboxError("enable_qpu", f"the firmware refused{hint}", status)

    def execute_qpu(self, num_qpus: int, control: int, noflush: bool, timeout_ms: int) -> int:
        """0 when the programs finished, host.EXECUTE_QPU_TIMEOUT when they did not in time."""
        return self.call("execute_qpu", num_qpus, control, int(noflush), timeout_ms)[0]

    def _status(self, name: str, *values: int) -> None:
        status = self.call(name, *values)[0]
        if status != 0:
            raise MailboxError(name, "the firmware refused", status)


def device_transport(path: str = DEVICE) -> tuple[Callable[[np.ndarray], None], Callable[[], None]]:
    """The ioctl on /dev/vcio: (transport, close). Raises OSError as open() does."""
    import fcntl

    fd = os.open(path, os.O_RDONLY)
    request = ioctl_number()

    def transport(buffer: np.ndarray) -> None:
        fcntl.ioctl(fd, request, memoryview(buffer).cast("B"), True)

    return transport, lambda: os.close(fd)


__all__ = ["BUFFER_WORDS", "Mailbox", "MailboxError", "build_message", "device_transport", "ioctl_number",
           "parse_response"]
