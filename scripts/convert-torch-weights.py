#!/usr/bin/env python3
"""Convert a legacy (pre-1.6, non-zip) PyTorch state-dict pickle into safetensors.

Usage: convert-torch-weights.py IN.pth OUT.safetensors

Standard library only (no torch, no numpy): a clean machine runs it straight from
scripts/setup. It reads the legacy format torch.save used before 1.6: a pickle of the magic
number, one of the protocol version, one of system info, then the state dict, whose tensors
point at "storages" by key, then a pickle of the storage keys, then each storage's raw
little-endian bytes after an 8-byte element count. Every tensor is written contiguous, in its
own dtype (F32, or I64 for BatchNorm's num_batches_tracked), names sorted.
"""

import collections
import json
import pickle
import struct
import sys

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001

# storage class -> (safetensors dtype, element size, struct code)
STORAGES = {
    "FloatStorage": ("F32", 4, "f"),
    "DoubleStorage": ("F64", 8, "d"),
    "HalfStorage": ("F16", 2, "e"),
    "LongStorage": ("I64", 8, "q"),
    "IntStorage": ("I32", 4, "i"),
    "ByteStorage": ("U8", 1, "B"),
}


class StorageType:
    def __init__(self, name):
        if name not in STORAGES:
            raise SystemExit(f"unsupported storage type torch.{name}")
        self.name = name


class Storage:
    def __init__(self, storage_type, key, numel):
        self.dtype, self.size, self.code = STORAGES[storage_type.name]
        self.key = key
        self.numel = numel
        self.data = None


class TensorRef:
    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset = storage, offset
        self.shape, self.stride = tuple(shape), tuple(stride)


def rebuild_tensor(storage, offset, shape, stride, *_rest):
    return TensorRef(storage, offset, shape, stride)


class Unpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return rebuild_tensor
        if module == "torch" and name.endswith("Storage"):
            return StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        if pid[0] != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {pid[0]!r}")
        storage_type, key, _location, numel, view = pid[1:6]
        if view is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        if key not in self.storages:
            self.storages[key] = Storage(storage_type, key, numel)
        return self.storages[key]


class PlainUnpickler(pickle.Unpickler):
    """For the header pickles: plain data only, no classes at all."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_legacy(path):
    with open(path, "rb") as f:
        if f.read(2)[:1] == b"PK":
            raise SystemExit(f"{path} is a zip-format checkpoint, not the legacy format")
        f.seek(0)
        # One unpickler per pickle, as torch does: an unpickler may read ahead of its own end.
        if PlainUnpickler(f).load() != MAGIC:
            raise SystemExit(f"{path}: not a legacy torch file (bad magic number)")
        if PlainUnpickler(f).load() != PROTOCOL:
            raise SystemExit(f"{path}: unsupported protocol version")
        PlainUnpickler(f).load()  # sys_info: endianness and type sizes
        storages = {}
        state = Unpickler(f, storages).load()
        keys = PlainUnpickler(f).load()
        for key in keys:
            st = storages[key]
            (numel,) = struct.unpack("<q", f.read(8))
            if numel != st.numel:
                raise SystemExit(f"{path}: storage {key} has {numel} elements, expected {st.numel}")
            st.data = f.read(numel * st.size)
            if len(st.data) != numel * st.size:
                raise SystemExit(f"{path}: truncated storage {key}")
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def contiguous_bytes(t):
    st = t.storage
    n = 1
    for d in t.shape:
        n *= d
    expected, acc = [], 1
    for d in reversed(t.shape):
        expected.insert(0, acc)
        acc *= d
    if tuple(expected) == t.stride or n <= 1:
        return st.data[t.offset * st.size:(t.offset + n) * st.size]
    out = bytearray()
    index = [0] * len(t.shape)
    for _ in range(n):  # strided gather, element by element (small tensors only in practice)
        pos = t.offset + sum(i * s for i, s in zip(index, t.stride))
        out += st.data[pos * st.size:(pos + 1) * st.size]
        for axis in reversed(range(len(index))):
            index[axis] += 1
            if index[axis] < t.shape[axis]:
                break
            index[axis] = 0
    return bytes(out)


def save_safetensors(tensors, path):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        data = contiguous_bytes(t)
        header[name] = {
            "dtype": t.storage.dtype,
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    state = load_legacy(sys.argv[1])
    tensors = {k: v for k, v in state.items() if isinstance(v, TensorRef)}
    if not tensors:
        raise SystemExit(f"{sys.argv[1]}: no tensors found")
    save_safetensors(tensors, sys.argv[2])
    print(f"{sys.argv[2]}: {len(tensors)} tensors")


if __name__ == "__main__":
    main()
