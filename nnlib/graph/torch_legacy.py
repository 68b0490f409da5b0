"""PyTorch state dicts saved by torch.save before version 1.6, read without torch.

That legacy format is five pickles and the raw storages, one after another (torch/serialization.py,
`_legacy_save`): a magic number, a protocol version, a system-information dict, the object itself,
whose tensors refer to storages by key (pickle's persistent ids), and the list of storage keys; then,
for each key in that order, an 8-byte little-endian element count and the elements.

A pickle can run any code it names, so the unpickler here names nothing itself: it accepts only the
globals a state dict of tensors needs (the ordered dict, the tensor-rebuilding functions, the
storage types) and refuses every other with a ModelError that says what the file asked for.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .ir import ModelError

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001
# Storage types and the element each holds (little-endian, as sys_info must say).
STORAGES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
            "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
            "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


@dataclass
class _Storage:
    key: str
    dtype: type
    count: int
    data: np.ndarray | None = None


@dataclass
class _Tensor:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]

    def array(self) -> np.ndarray:
        data = self.storage.data
        assert data is not None
        if len(self.strides) != len(self.shape) or min(self.strides, default=0) < 0 or self.offset < 0:
            raise ValueError(f"shape {self.shape} with strides {self.strides} at offset {self.offset}")
        if 0 in self.shape:
            return np.zeros(self.shape, data.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.strides, strict=True))
        if last >= len(data):
            raise ValueError(f"it reaches element {last} of a storage of {len(data)}")
        view = np.lib.stride_tricks.as_strided(data[self.offset:], self.shape,
                                               tuple(s * data.itemsize for s in self.strides))
        return np.array(view)          # a copy that owns its memory


def _rebuild_tensor_v2(storage, offset, shape, strides, requires_grad=False, hooks=None, *rest) -> _Tensor:
    return _Tensor(storage, int(offset), tuple(int(n) for n in shape), tuple(int(s) for s in strides))


def _rebuild_tensor(storage, offset, shape, strides) -> _Tensor:
    return _rebuild_tensor_v2(storage, offset, shape, strides)


class _StorageType:
    def __init__(self, name: str):
        self.name = name


class _Unpickler(pickle.Unpickler):
    """Only the names a state dict needs; storages come back as placeholders filled afterwards."""

    def __init__(self, file, source: str):
        super().__init__(file)
        self.source = source
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if (module, name) == ("torch._utils", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGES:
            return _StorageType(name)
        raise ModelError(self.source, None, None, f"the pickle asks for {module}.{name}, which a state dict of "
                                                  "tensors does not need: refused (a pickle can run code)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise ModelError(self.source, None, None, f"unknown persistent id {str(pid)[:80]}")
        _, kind, key, _location, count = pid[:5]
        if len(pid) > 5 and pid[5] is not None:
            raise ModelError(self.source, None, None, "storage views (pre-0.4 files) are not supported")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(str(key), STORAGES[kind.name], int(count))
        return storage


def _load_one(f, source: str, what: str, unpickler: _Unpickler | None = None):
    try:
        return (unpickler or _Unpickler(f, source)).load()
    except ModelError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            struct.error) as exc:
        raise ModelError(source, None, None, f"not a legacy torch.save file ({what}: {exc})") from None


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a legacy torch.save file by name, as numpy arrays (shapes as torch has them)."""
    source = Path(path).name
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(source, None, None, f"cannot read: {exc.strerror}") from None
    f = io.BytesIO(raw)
    if _load_one(f, source, "magic number") != MAGIC:
        raise ModelError(source, None, None, "not a legacy torch.save file (no magic number; files of torch 1.6 and "
                                             "later are zip archives, not read here)")
    if _load_one(f, source, "protocol version") != PROTOCOL:
        raise ModelError(source, None, None, "unknown torch.save protocol version")
    info = _load_one(f, source, "system information")
    if not isinstance(info, dict) or not info.get("little_endian", False):
        raise ModelError(source, None, None, "a big-endian torch.save file is not supported")
    unpickler = _Unpickler(f, source)
    tree = _load_one(f, source, "the object", unpickler)
    keys = _load_one(f, source, "the storage keys")
    if not isinstance(keys, list):
        raise ModelError(source, None, None, "not a legacy torch.save file (no storage key list)")
    for key in keys:
        storage = unpickler.storages.get(key)
        header = f.read(8)
        if storage is None or len(header) != 8:
            raise ModelError(source, None, None, f"truncated or corrupt: storage {key!r} is missing")
        count = struct.unpack("<q", header)[0]
        size = count * np.dtype(storage.dtype).itemsize
        payload = f.read(size)
        if count != storage.count or len(payload) != size:
            raise ModelError(source, None, None, f"truncated or corrupt: storage {key!r} holds "
                                                 f"{len(payload)} of {size} bytes")
        storage.data = np.frombuffer(payload, dtype=np.dtype(storage.dtype).newbyteorder("<"))
    if not isinstance(tree, dict):
        raise ModelError(source, None, None, "the file holds no state dict (a dict of tensors)")
    out = {}
    for name, value in tree.items():
        if not isinstance(value, _Tensor):
            continue                       # metadata (e.g. an `_metadata` entry) is not a weight
        if value.storage.data is None:
            raise ModelError(source, None, None, f"tensor {name!r}: its storage is not in the file")
        try:
            out[str(name)] = value.array()
        except ValueError as exc:
            raise ModelError(source, None, None, f"tensor {name!r}: {exc}") from None
    return out


__all__ = ["load_state_dict"]
