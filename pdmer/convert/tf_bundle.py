"""Read a TensorFlow 1.x checkpoint (tensor bundle: ``PREFIX.index`` + ``PREFIX.data-00000-of-00001``) without TF.

Facts from TensorFlow's ``core/util/tensor_bundle`` and LevelDB's table format, which it reuses:
- ``.index`` is a LevelDB table: data blocks of prefix-compressed (key, value) entries, an index block pointing at
  them, and a 48-byte footer ending in the magic number 0xdb4775248b80fb57. Every block is followed by a 1-byte
  compression type (0: none, which TF writes) and a 4-byte CRC.
- Key ``""`` holds the BundleHeaderProto; every other key is a tensor name whose value is a BundleEntryProto:
  dtype (field 1), shape (2), shard_id (3), offset (4), size (5), crc32c (6, masked), slices (7).
- Tensor bytes sit raw, little-endian, at ``offset`` in the data shard.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pdmer.errors import CheckpointError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
# TensorFlow's DataType enum (types.proto) -> numpy little-endian dtypes.
DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8", 10: "?", 19: "<f2"}


def _varint(buffer: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def _protobuf_fields(buffer: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs of a serialized protobuf message: varints, fixed32/64 and length-delimited."""
    fields, position = [], 0
    while position < len(buffer):
        tag, position = _varint(buffer, position)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, position = _varint(buffer, position)
        elif wire_type == 1:
            value, position = struct.unpack_from("<Q", buffer, position)[0], position + 8
        elif wire_type == 2:
            length, position = _varint(buffer, position)
            value, position = buffer[position : position + length], position + length
        elif wire_type == 5:
            value, position = struct.unpack_from("<I", buffer, position)[0], position + 4
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire_type} in a checkpoint index entry")
        fields.append((number, value))
    return fields


@dataclass(frozen=True)
class BundleEntry:
    dtype: str
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    masked_crc32c: int | None

    @classmethod
    def parse(cls, value: bytes) -> "BundleEntry":
        dtype, shape, shard, offset, size, crc = None, (), 0, 0, 0, None
        for number, field in _protobuf_fields(value):
            if number == 1:
                if field not in DTYPES:
                    raise CheckpointError(f"unsupported TensorFlow dtype enum {field}")
                dtype = DTYPES[field]
            elif number == 2:  # TensorShapeProto: repeated Dim (field 2) with size in field 1
                shape = tuple(dict(_protobuf_fields(dim)).get(1, 0) for n, dim in _protobuf_fields(field) if n == 2)
            elif number == 3:
                shard = field
            elif number == 4:
                offset = field
            elif number == 5:
                size = field
            elif number == 6:
                crc = field
            elif number == 7:
                raise CheckpointError("partitioned (sliced) checkpoint variables are not supported")
        return cls(dtype, shape, shard, offset, size, crc)


def _block_entries(table: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """All (key, value) entries of one uncompressed table block."""
    if table[offset + size] != 0:
        raise CheckpointError("compressed checkpoint index blocks are not supported (TensorFlow writes none)")
    block = table[offset : offset + size]
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * num_restarts
    entries, position, key = [], 0, b""
    while position < end:
        shared, position = _varint(block, position)
        unshared, position = _varint(block, position)
        value_length, position = _varint(block, position)
        key = key[:shared] + block[position : position + unshared]
        position += unshared
        entries.append((key, block[position : position + value_length]))
        position += value_length
    return entries


def read_index(index_path: Path) -> dict[str, BundleEntry]:
    """Tensor name -> BundleEntry for every tensor in a ``.index`` file."""
    table = Path(index_path).read_bytes()
    if len(table) < FOOTER_SIZE or struct.unpack_from("<Q", table, len(table) - 8)[0] != TABLE_MAGIC:
        raise CheckpointError(f"{index_path} is not a TensorFlow checkpoint index (no LevelDB table magic)")
    footer = table[-FOOTER_SIZE:]
    _, position = _varint(footer, 0)  # metaindex handle: unused by TF
    _, position = _varint(footer, position)
    index_offset, position = _varint(footer, position)
    index_size, _ = _varint(footer, position)
    entries = {}
    for _, handle in _block_entries(table, index_offset, index_size):
        block_offset, position = _varint(handle, 0)
        block_size, _ = _varint(handle, position)
        for key, value in _block_entries(table, block_offset, block_size):
            if key:  # key "" is the bundle header
                entries[key.decode()] = BundleEntry.parse(value)
    return entries


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)  # Castagnoli polynomial, reflected
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    """CRC-32C as TensorFlow stores it: rotated right by 15 bits plus 0xa282ead8 (LevelDB's crc32c::Mask)."""
    crc = 0xFFFFFFFF
    table = _CRC32C
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


class TensorBundle:
    """A TF checkpoint opened by its prefix, e.g. ``.../MSD_musicnn/`` (files ``.index``, ``.data-00000-of-00001``)."""

    def __init__(self, prefix: str | Path):
        self.prefix = str(prefix)
        index = Path(self.prefix + ".index")
        if not index.is_file():
            raise CheckpointError(f"no TensorFlow checkpoint index at {index}")
        self.entries = read_index(index)
        shards = {entry.shard for entry in self.entries.values()}
        self._data = {}
        for shard in shards:
            path = Path(f"{self.prefix}.data-{shard:05d}-of-{len(shards):05d}")
            if not path.is_file():
                raise CheckpointError(f"checkpoint data shard {path} is missing")
            self._data[shard] = path.read_bytes()

    def names(self) -> list[str]:
        return sorted(self.entries)

    def tensor(self, name: str, *, verify: bool = True) -> np.ndarray:
        """The tensor ``name`` as a numpy array; ``verify`` checks its stored CRC-32C."""
        if name not in self.entries:
            raise CheckpointError(f"tensor {name!r} is not in {self.prefix}.index")
        entry = self.entries[name]
        data = self._data[entry.shard][entry.offset : entry.offset + entry.size]
        if verify and entry.masked_crc32c is not None and masked_crc32c(data) != entry.masked_crc32c:
            raise CheckpointError(f"tensor {name!r} in {self.prefix} fails its CRC-32C check: the file is damaged")
        return np.frombuffer(data, dtype=entry.dtype).reshape(entry.shape).copy()
