"""Line -> 64-bit word, with the defaults of Broadcom's assembler (qpu-isa.md §2): unused raddr
39, unused mux r0, an idle ALU with cond never and waddr 39, a `-` destination with cond never
unless `.setf`, and `mov` of constants as `ldi`. The operations go to the ALUs that have them,
their operands to the read ports and small immediate that can serve them all.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from . import isa
from .instr import Instruction
from .line import IMMEDIATE_OPS, LDI_OPS, AluOp, Branch, EncodeError, Line, Value, mul_first, value_bits
from .operands import (
    NO_WRITE,
    Label,
    PerElement,
    Reg,
    Semaphore,
    float_bits,
)


def _cond_code(name: str | None, default: int) -> int:
    if name is None:
        return default
    if name == "always":
        return isa.COND_ALWAYS
    try:
        return isa.CONDITION_CODES[name]
    except KeyError:
        raise EncodeError(f"unknown condition .{name}") from None


def default_cond(op: AluOp, dst: Reg) -> int:
    """Broadcom: an ALU whose result goes nowhere is gated (cond never) unless it sets flags."""
    if op.cond is not None:
        return _cond_code(op.cond, isa.COND_ALWAYS)
    if op.op == "nop" and op.dst is None:
        return isa.COND_NEVER
    return isa.COND_NEVER if dst.is_nop_write and not op.setf else isa.COND_ALWAYS


def _write_spaces(dst: Reg, slot: int) -> dict[str, int]:
    spaces = dst.write_map
    if not spaces:
        raise EncodeError(f"{dst.name} cannot be written", slot)
    return spaces


def _choose_ws(dsts: dict[str, Reg], packed_unit: str | None, slots: dict[str, int]) -> tuple[int, dict[str, int]]:
    """Pick the write swap bit: ws=0 puts the ADD result in regfile-A space and MUL in B (§2)."""
    spaces = {unit: _write_spaces(dst, slots.get(unit)) for unit, dst in dsts.items()}
    for ws in (0, 1):
        side = {"add": "a" if ws == 0 else "b", "mul": "b" if ws == 0 else "a"}
        if all(side[u] in spaces[u] for u in dsts) and (packed_unit is None or side[packed_unit] == "a"):
            return ws, {u: spaces[u][side[u]] for u in dsts}
    if packed_unit is not None:
        raise EncodeError("a regfile-A pack applies to the ALU writing regfile-A space; "
                          "this destination cannot be written there", slots.get(packed_unit))
    raise EncodeError("the ADD and MUL results must go to different register files "
                      "(ADD to A and MUL to B, or the reverse)", slots.get("mul"))


def _pack_code(dst: Reg, unit: str, slot: int) -> tuple[int | None, int, str | None]:
    """(pm, pack code, unit whose result needs regfile-A space) for a destination's pack suffix."""
    if not dst.pack:
        return None, 0, None
    name = isa.PACK_ALIASES.get(dst.pack, dst.pack)
    if name in isa.PACK_A_CODES:
        return 0, isa.PACK_A_CODES[name], unit
    if name in isa.PACK_MUL_CODES:
        if unit != "mul":
            raise EncodeError(f"pack .{dst.pack} converts a MUL ALU result; use it on the MUL operation", slot)
        return 1, isa.PACK_MUL_CODES[name], None
    raise EncodeError(f"unknown pack mode .{dst.pack}", slot)


def _merge(current: int | None, new: int | None, what: str, slot: int | None) -> int | None:
    if new is None or current in (None, new):
        return new if current is None else current
    raise EncodeError(f"conflicting {what} in one instruction", slot)



def _value_key(value: Value) -> object:
    """A hashable key that tells apart values Python calls equal but the QPU does not (1, 1.0, True,
    0.0, -0.0)."""
    if isinstance(value, float):
        return ("f", float_bits(value))
    if isinstance(value, int):
        return ("i", int(value))
    return value


_ENCODED: dict[tuple, int] = {}
_ENCODED_LIMIT = 1 << 16


def encode_line(line: Line, address: int = 0) -> int:
    """Encode one instruction; `address` (bytes) resolves `brr` to a label.

    Lines without a branch encode the same anywhere, so their words are remembered: real programs
    repeat the same instructions many times (macros, .rep, unrolled loops)."""
    if line.raw is not None:
        return line.raw
    if line.branch is not None:
        return _encode_uncached(line, address)
    key = (tuple((op.op, op.dst, tuple(_value_key(s) for s in op.srcs), op.cond, op.setf, op.unit) for op in line.ops),
           line.signal, tuple(_value_key(r) for r in line.reads))
    word = _ENCODED.get(key)
    if word is None:
        word = _encode_uncached(line, address)
        if len(_ENCODED) >= _ENCODED_LIMIT:
            _ENCODED.clear()
        _ENCODED[key] = word
    return word


def clear_caches() -> None:
    """Forget remembered encodings (for benchmarks that time cold runs)."""
    _ENCODED.clear()


def _encode_uncached(line: Line, address: int) -> int:
    if line.branch is not None:
        if line.ops or line.signal or line.reads:
            raise EncodeError("a branch instruction carries no ALU operation, signal or read")
        return _encode_branch(line.branch, address).encode()
    kinds = {_immediate_kind(op) for op in line.ops}
    if line.ops and kinds <= {"ldi", "semaphore"}:
        if len(kinds) > 1:
            raise EncodeError("a load immediate and a semaphore cannot share an instruction")
        if line.signal or line.reads:
            raise EncodeError(f"a {kinds.pop()} instruction carries no signal or read")
        return _encode_immediate(line.ops).encode()
    for index, op in enumerate(line.ops):
        if op.op in IMMEDIATE_OPS:
            raise EncodeError(f"{op.op} cannot be combined with an ALU operation", index)
    return _encode_alu(line).encode()


def _immediate_kind(op: AluOp) -> str | None:
    """"ldi"/"semaphore" if this op is (or is a `mov` of) an immediate, else None."""
    if op.op in isa.SEMAPHORE_OPS or (op.op == "mov" and op.srcs and isinstance(op.srcs[0], Semaphore)):
        return "semaphore"
    if op.op in LDI_OPS:
        return "ldi"
    if op.op == "mov" and len(op.srcs) == 1 and isinstance(op.srcs[0], (int, float, Label, PerElement)):
        return "ldi"
    return None


def _encode_immediate(ops: list[AluOp]) -> Instruction:
    if len(ops) > 2:
        raise EncodeError("at most two destinations (ADD and MUL) per instruction", 2)
    payload = None
    for index, op in enumerate(ops):
        fields = _immediate_payload(op, index)
        if payload is not None and fields != payload:
            raise EncodeError("both destinations of a load immediate receive the same value", index)
        payload = fields
    assert payload is not None
    fmt = "semaphore" if payload["ldi_mode"] == isa.LDI_MODE_SEMAPHORE else "ldi"
    fields = dict(payload, sig=isa.SIG_LOAD_IMM, **_immediate_writes(ops))
    return Instruction(fmt, fields)


def _immediate_payload(op: AluOp, slot: int) -> dict[str, int]:
    if op.op in isa.SEMAPHORE_OPS:
        if len(op.srcs) != 1 or not isinstance(op.srcs[0], int) or isinstance(op.srcs[0], bool):
            raise EncodeError(f"{op.op} takes a destination and a semaphore number", slot)
        sem = Semaphore(op.op == "sacq", op.srcs[0])
    elif op.srcs and isinstance(op.srcs[0], Semaphore):
        sem = op.srcs[0]
    else:
        sem = None
    if sem is not None:
        if not 0 <= sem.number < isa.SEMAPHORE_COUNT:
            raise EncodeError(f"semaphore number {sem.number} is not in 0..{isa.SEMAPHORE_COUNT - 1}", slot)
        return {"ldi_mode": isa.LDI_MODE_SEMAPHORE, "sa": int(sem.acquire), "semaphore": sem.number}
    if len(op.srcs) != 1:
        raise EncodeError(f"{op.op} takes a destination and one value", slot)
    value = op.srcs[0]
    if isinstance(value, PerElement):
        # Like vc4asm: the signed mode when every value fits -2..1, else the unsigned one.
        signed = op.op == "ldipes" or (op.op != "ldipeu" and max(value.values) <= 1)
        return {"ldi_mode": isa.LDI_MODE_CODES["ldipes" if signed else "ldipeu"],
                "imm": _per_element_bits(value, signed, slot)}
    mode = isa.LDI_MODE_CODES.get(op.op, 0)
    return {"ldi_mode": mode, "imm": value_bits(value, "load immediate")}


def _per_element_bits(vector: PerElement, signed: bool, slot: int) -> int:
    """§12: the layout is isa.per_element_immediate's."""
    low, high = (-2, 1) if signed else (0, 3)
    if len(vector.values) != 16:
        raise EncodeError(f"a per-element vector has 16 values, not {len(vector.values)}", slot)
    for v in vector.values:
        if not low <= v <= high:
            kind = "signed" if signed else "unsigned"
            raise EncodeError(f"per-element {kind} values must be in {low}..{high}, not {v}", slot)
    return isa.per_element_immediate(vector.values)


def _immediate_writes(ops: list[AluOp]) -> dict[str, int]:
    """The write half (§12 shares the ALU's): the first op writes through ADD, the second MUL."""
    units = dict(zip(("add", "mul"), ops, strict=False))     # one or two ops
    return _write_fields(units, {u: i for i, u in enumerate(units)})[0]


def _write_fields(units: dict[str, AluOp], slots: dict[str, int]) -> tuple[dict[str, int], int | None]:
    """Conditions, destinations, ws, sf and the destination pack of the ALU(s) in `units`.

    Returns the fields and the pm the pack needs (None if no pack)."""
    dsts = {u: op.dst if op.dst is not None else NO_WRITE for u, op in units.items()}
    pm = None
    pack = 0
    packed_unit = None
    for unit, dst in dsts.items():
        if dst.pack:
            if pm is not None:
                raise EncodeError("only one destination pack per instruction", slots[unit])
            pm, pack, packed_unit = _pack_code(dst, unit, slots[unit])
    ws, waddr = _choose_ws(dsts, packed_unit, slots)
    fields = {"ws": ws, "pack": pack, "sf": int(any(op.setf for op in units.values())),
              "waddr_add": isa.NOP_ADDR, "waddr_mul": isa.NOP_ADDR,
              "cond_add": isa.COND_NEVER, "cond_mul": isa.COND_NEVER}
    for unit, op in units.items():
        fields["waddr_" + unit] = waddr[unit]
        fields["cond_" + unit] = default_cond(op, dsts[unit])
    if pm is not None:
        fields["pm"] = pm
    return fields, pm


def _assign_units(ops: list[AluOp]) -> dict[str, tuple[int, AluOp]]:
    """Place the operations on the ADD and MUL ALUs, in order, first fit (ADD first)."""
    if len(ops) > 2:
        raise EncodeError("at most one ADD and one MUL operation per instruction", 2)
    if not ops:
        return {}
    allowed = [_units_for(op, i) for i, op in enumerate(ops)]
    orders = [("add", "mul"), ("mul", "add")] if len(ops) == 2 else [(unit,) for unit in allowed[0]]
    for order in orders:
        if all(unit in allowed[i] for i, unit in enumerate(order[:len(ops)])):
            return {unit: (i, ops[i]) for i, unit in enumerate(order[:len(ops)])}
    if len(ops) == 2:
        raise EncodeError("these two operations need the same ALU: one must be an ADD and one a MUL operation", 1)
    raise EncodeError(f"{ops[0].op} is not an ALU operation", 0)


def _units_for(op: AluOp, slot: int) -> tuple[str, ...]:
    rotated = any(isinstance(s, Reg) and s.rotate is not None for s in op.srcs)
    units = []
    if op.op in isa.ADD_OP_CODES or op.op == "mov":
        units.append("add")
    if op.op in isa.MUL_OP_CODES or op.op == "mov":
        units.append("mul")
    if mul_first(op.op):
        units.reverse()
    if op.unit:
        units = [u for u in units if u == op.unit]
    if rotated:
        if "mul" not in units:
            raise EncodeError("vector rotation applies to the MUL ALU result only", slot)
        units = ["mul"]
    if not units:
        raise EncodeError(f"unknown operation {op.op}", slot)
    return tuple(units)


def _operands(op: AluOp, unit: str, slot: int) -> tuple[int, tuple[Value | None, Value | None]]:
    """(opcode, (source a, source b)) for an operation on `unit`."""
    name = op.op
    srcs = op.srcs
    if name == "mov":
        if len(srcs) != 1 or op.dst is None:
            raise EncodeError("mov takes a destination and one source", slot)
        return (isa.ADD_OP_CODES[isa.MOV_ADD_OP] if unit == "add" else isa.MUL_OP_CODES[isa.MOV_MUL_OP],
                (srcs[0], srcs[0]))
    code = isa.ADD_OP_CODES[name] if unit == "add" else isa.MUL_OP_CODES[name]
    if name == "nop":
        if srcs and len(srcs) != 2:
            raise EncodeError("nop takes no operand, or a destination and two sources", slot)
        return code, (srcs[0], srcs[1]) if srcs else (None, None)
    if op.dst is None:
        raise EncodeError(f"{name} needs a destination (write - to discard the result)", slot)
    unary = unit == "add" and isa.OP_BY_NAME[name].unary
    if unary and len(srcs) == 1:
        return code, (srcs[0], srcs[0])      # unary: operand B repeats A (Mesa, vc4asm)
    if len(srcs) != 2:
        expected = "one or two sources" if unary else "two sources"
        raise EncodeError(f"{name} takes a destination and {expected}", slot)
    return code, (srcs[0], srcs[1])


@dataclass
class _ReadRequest:
    """A source that needs a read port: the (port, value) choices, in order of preference."""

    options: list[tuple[str, int]]
    slot: int


def _read_request(value: Value, slot: int, rotation: int | None) -> _ReadRequest | None:
    if isinstance(value, Reg):
        if value.mux is not None:
            return None
        reads = value.read_map
        if not reads:
            raise EncodeError(f"{value.name} cannot be read", slot)
        options = [(port, addr) for port, addr in sorted(reads.items())]
        if value.unpack:
            options = [o for o in options if o[0] == "a"]
            if not options:
                raise EncodeError(f"unpack .{value.unpack} applies to regfile A reads and r4 only", slot)
        return _ReadRequest(options, slot)
    bits = value_bits(value, "small immediate")
    if rotation is not None and isa.SMALL_IMM_BITS[rotation] == bits:
        return _ReadRequest([("imm", rotation)], slot)
    code = isa.SMALL_IMM_CODES.get(bits)
    if code is None:
        raise EncodeError(f"{_show_number(value)} is not a small immediate (-16..15, 1/256..128 in powers of 2); "
                          "load it into a register with ldi first", slot)
    return _ReadRequest([("imm", code)], slot)


def _show_number(value: Value) -> str:
    return str(value) if isinstance(value, float) else hex(value_bits(value)) if isinstance(value, int) else str(value)


def _assign_ports(requests: list[_ReadRequest]) -> tuple[int, int, list[str]]:
    """Choose a read port for every request: one regfile-A address, one regfile-B address or small
    immediate. Returns (raddr_a, raddr_b or small-immediate code, chosen port per request)."""
    for choice in itertools.product(*(r.options for r in requests)):
        port_a = {v for p, v in choice if p == "a"}
        port_b = {(p, v) for p, v in choice if p != "a"}
        if len(port_a) <= 1 and len(port_b) <= 1:
            raddr_a = port_a.pop() if port_a else isa.NOP_ADDR
            raddr_b = port_b.pop()[1] if port_b else isa.NOP_ADDR
            return raddr_a, raddr_b, [p for p, _ in choice]
    slot = requests[-1].slot
    raise EncodeError("too many register reads: one instruction reads at most one regfile-A address and one "
                      "regfile-B address or small immediate", slot)


def _rotation_code(mul_srcs: tuple[Value | None, ...], slot: int) -> int | None:
    amounts = {s.rotate for s in mul_srcs if isinstance(s, Reg) and s.rotate is not None}
    if len(amounts) > 1:
        raise EncodeError("the MUL sources ask for different rotations", slot)
    if not amounts:
        return None
    amount = amounts.pop()
    if amount == "r5":
        return isa.SMALL_IMM_ROTATE_BASE
    assert isinstance(amount, int)
    return isa.SMALL_IMM_ROTATE_BASE + amount


def _encode_alu(line: Line) -> Instruction:
    units = _assign_units(line.ops)
    slots = {unit: index for unit, (index, _) in units.items()}
    fields = {f.name: 0 for f in isa.ALU_FIELDS}
    fields.update(raddr_a=isa.NOP_ADDR, raddr_b=isa.NOP_ADDR, sig=isa.SIG_NONE)
    write, pm = _write_fields({u: op for u, (_, op) in units.items()}, slots)
    fields.update(write)

    sources: dict[str, tuple[Value | None, Value | None]] = {}
    for unit, (index, op) in units.items():
        fields["op_" + unit], sources[unit] = _operands(op, unit, index)
    rotation = _rotation_code(sources.get("mul", ()), slots.get("mul", 0))

    # Every source that needs a read port, then the `read` pseudo-slots.
    requests: list[_ReadRequest] = []
    owners: list[tuple[str, int] | None] = []
    for unit, (a, b) in sources.items():
        for position, value in enumerate((a, b)):
            if value is None:
                continue
            request = _read_request(value, slots[unit], rotation)
            if request is not None:
                requests.append(request)
                owners.append((unit, position))
    for index, value in enumerate(line.reads):
        request = _read_request(value, len(line.ops), rotation)
        if request is None:
            if not (isinstance(value, Reg) and value.mux == isa.MUX_R4 and value.unpack):
                raise EncodeError("read takes a register, a small immediate, or r4 with an unpack", len(line.ops))
            continue
        requests.append(request)
        owners.append(("read", index))
    if rotation is not None:
        requests.append(_ReadRequest([("imm", rotation)], slots["mul"]))
        owners.append(None)
    raddr_a, raddr_b, ports = _assign_ports(requests)
    fields["raddr_a"], fields["raddr_b"] = raddr_a, raddr_b
    small_imm = "imm" in ports

    # Muxes and unpack.
    unpacks: dict[str, str] = {}
    port_of = {owner: port for owner, port in zip(owners, ports, strict=True) if owner is not None}
    consumers = [(unit, position, value) for unit, pair in sources.items() for position, value in enumerate(pair)]
    consumers += [("read", index, value) for index, value in enumerate(line.reads)]
    for unit, position, value in consumers:
        if value is None:
            continue
        mux_field = f"{unit}_{'ab'[position]}" if unit != "read" else None
        if isinstance(value, Reg) and value.mux is not None:
            kind = "r4" if value.mux == isa.MUX_R4 else None
            mux = value.mux
        else:
            port = port_of[(unit, position)]
            kind = "a" if port == "a" else None
            mux = isa.MUX_A if port == "a" else isa.MUX_B
        if mux_field is not None:
            fields[mux_field] = mux
        unpack = value.unpack if isinstance(value, Reg) else ""
        slot = slots.get(unit, len(line.ops))
        if kind is None:
            if unpack:
                raise EncodeError(f"unpack .{unpack} applies to regfile A reads and r4 only", slot)
            continue
        if unit == "read" and not unpack:
            continue
        if unpacks.setdefault(kind, unpack) != unpack:
            where = "regfile A" if kind == "a" else "r4"
            raise EncodeError(f"the unpack applies to every ALU input read from {where}; "
                              "write the same suffix on each", slot)
    unpack_pm = None
    for kind, name in unpacks.items():
        if name:
            code = isa.UNPACK_CODES.get(isa.UNPACK_ALIASES.get(name, name))
            if code is None:
                raise EncodeError(f"unknown unpack mode .{name}")
            unpack_pm = _merge(unpack_pm, 0 if kind == "a" else 1, "pack/unpack modes (regfile A vs r4/colour)", None)
            fields["unpack"] = code
    fields["pm"] = _merge(pm, unpack_pm, "pack/unpack modes (regfile A vs r4/colour)", None) or 0

    # Signal.
    if line.signal is not None:
        if small_imm:
            raise EncodeError("a signal cannot be combined with a small immediate or rotation (same field, §1)",
                              len(line.ops))
        fields["sig"] = isa.SIGNAL_CODES[line.signal]
    elif small_imm:
        fields["sig"] = isa.SIG_SMALL_IMM
    return Instruction("alu", fields)


def _encode_branch(br: Branch, address: int) -> Instruction:
    if br.cond not in isa.BRANCH_CONDITION_CODES:
        raise EncodeError(f"unknown branch condition .{br.cond}")
    target = br.target
    if isinstance(target, Label):
        offset = target.address - (address + isa.BRANCH_LINK_OFFSET) if br.relative else target.address
    else:
        offset = target
    fields = {"sig": isa.SIG_BRANCH, "cond_br": isa.BRANCH_CONDITION_CODES[br.cond], "rel": int(br.relative),
              "imm": value_bits(offset, "branch target"), "reg": 0, "raddr_a": 0}
    if br.reg is not None:
        file = br.reg.physical_file()
        if file != "a" or br.reg.unpack or br.reg.rotate:
            raise EncodeError(f"a branch adds a regfile-A register (ra0..ra31), not {br.reg.name}")
        fields.update(reg=1, raddr_a=br.reg.read_map["a"])
    if len(br.links) > 2:
        raise EncodeError("a branch writes at most two link registers")
    links = dict(zip(("add", "mul"), br.links, strict=False))
    for link in links.values():
        if link.pack:
            raise EncodeError("a branch link register takes no pack")
    ws, waddr = _choose_ws({u: links.get(u, NO_WRITE) for u in ("add", "mul")}, None, {})
    fields.update(ws=ws, waddr_add=waddr["add"], waddr_mul=waddr["mul"])
    return Instruction("branch", fields)


