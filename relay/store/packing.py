"""Byte layouts of the store's packed columns, the same on every machine.

Invariants:
- Packed u32/u64 arrays (``inbox_runs.senders``/``client_ids``) are little-endian whatever
  the machine's byte order.
- A dedup record's text inside ``accepted.records`` is ``,`` then 24 hex digits (sender u32
  and client id u64, little-endian) and ``,``: self-synchronising, so a search for one
  record's text (:func:`record_key`) can match only that whole record.

Owns no state.
"""

from __future__ import annotations

import binascii
import functools
import struct
import sys
from array import array
from collections.abc import Iterator, Sequence
from itertools import chain

U32 = "I" if array("I").itemsize == 4 else "L"
U64 = "Q"
_SWAP = sys.byteorder == "big"


def pack(typecode: str, values: Sequence[int]) -> bytes:
    """``values`` as a little-endian array of ``typecode`` (:data:`U32` or :data:`U64`)."""
    packed = array(typecode, values)
    if _SWAP:
        packed.byteswap()
    return packed.tobytes()


def unpack(typecode: str, blob: bytes) -> array[int]:
    """The values of a blob :func:`pack` made."""
    values = array(typecode)
    values.frombytes(blob)
    if _SWAP:
        values.byteswap()
    return values


# One dedup record: sender (u32) and client id (u64), little-endian, as 24 hex digits.
RECORD = struct.Struct("<IQ")
RECORD_TEXT = 2 * RECORD.size + 1  # its digits and the "," after them


@functools.cache
def _records_struct(count: int) -> struct.Struct:
    return struct.Struct("<" + "IQ" * count)


def encode_records(senders: Sequence[int], client_ids: Sequence[int]) -> bytes:
    """The ``accepted.records`` text of these (sender, client id) pairs (module docstring)."""
    packed = _records_struct(len(client_ids)).pack(
        *chain.from_iterable(zip(senders, client_ids, strict=True))
    )
    return b"," + binascii.hexlify(packed, b",", RECORD.size) + b","


def record_key(sender: int, client_id: int) -> bytes:
    """The text one (sender, client id) record has inside ``accepted.records``."""
    return b"," + binascii.hexlify(RECORD.pack(sender, client_id)) + b","


def decode_records(records: bytes) -> Iterator[tuple[int, int]]:
    """(sender, client id) of each record of an ``accepted.records`` text, in order."""
    return RECORD.iter_unpack(binascii.unhexlify(records.replace(b",", b"")))
