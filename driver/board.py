"""Board and firmware facts from the mailbox, for `vc4 info` and Driver.info()."""

from __future__ import annotations

import datetime

from vc4common import host

from .mailbox import Mailbox, MailboxError

# New-style revision codes (bit 23 set): type in bits 11..4, processor 15..12, memory 22..20
# (the Raspberry Pi documentation's "Raspberry Pi revision codes" table; the boards with a VideoCore IV).
BOARD_TYPES = {0x0: "A", 0x1: "B", 0x2: "A+", 0x3: "B+", 0x4: "2B", 0x6: "CM1", 0x8: "3B", 0x9: "Zero",
               0xA: "CM3", 0xC: "Zero W", 0xD: "3B+", 0xE: "3A+", 0x10: "CM3+", 0x12: "Zero 2 W"}
PROCESSORS = {0: "BCM2835", 1: "BCM2836", 2: "BCM2837"}


def describe_revision(code: int) -> str:
    """'Zero rev 1.3, BCM2835, 512 MB' for a new-style code; the hex code for an old-style one."""
    if not code >> 23 & 1:
        return f"old-style revision {code:#x}"
    kind = BOARD_TYPES.get(code >> 4 & 0xFF, f"type {code >> 4 & 0xFF:#x}")
    processor = PROCESSORS.get(code >> 12 & 0xF, f"processor {code >> 12 & 0xF}")
    memory = 256 << (code >> 20 & 0x7)
    return f"Raspberry Pi {kind} rev 1.{code & 0xF}, {processor}, {memory} MB"


def board_info(mailbox: Mailbox) -> dict[str, object]:
    """What the firmware says about the board; a tag the firmware refuses is left out."""
    info: dict[str, object] = {}

    def ask(key: str, call) -> None:
        try:
            info[key] = call()
        except MailboxError:
            pass

    ask("board_revision", mailbox.board_revision)
    ask("board_model", mailbox.board_model)
    ask("board_serial", mailbox.board_serial)
    ask("firmware_revision", mailbox.firmware_revision)
    ask("arm_memory", mailbox.arm_memory)
    ask("gpu_memory", mailbox.vc_memory)
    ask("clocks_hz", lambda: {name: mailbox.clock_rate(name) for name in host.CLOCK_IDS})
    ask("temperature_c", mailbox.temperature)
    ask("throttled", mailbox.throttled)
    return info


def info_rows(info: dict[str, object]) -> list[tuple[str, str]]:
    """(name, value) rows for people to read."""
    rows = [("backend", str(info.get("backend", "")))]
    if "board_revision" in info:
        rows.append(("board", describe_revision(int(info["board_revision"]))))
    if "board_serial" in info:
        rows.append(("serial", f"{int(info['board_serial']):016x}"))
    if "firmware_revision" in info:
        stamp = int(info["firmware_revision"])
        date = datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        rows.append(("firmware", f"{stamp:#x} (built {date})"))
    for key, label in (("arm_memory", "ARM memory"), ("gpu_memory", "GPU memory (gpu_mem)")):
        if key in info:
            base, size = info[key]
            rows.append((label, f"{size >> 20} MB at {base:#010x}"))
    for name, hz in dict(info.get("clocks_hz", {})).items():
        rows.append((f"{name} clock", f"{hz / 1e6:g} MHz"))
    if "temperature_c" in info:
        rows.append(("temperature", f"{info['temperature_c']:.1f} °C"))
    if "throttled" in info:
        flags = int(info["throttled"])
        rows.append(("throttled", "no" if flags == 0 else f"{flags:#x} (under-voltage or heat; see vcgencmd)"))
    return rows


__all__ = ["board_info", "describe_revision", "info_rows"]
