"""An HPACK encoder that remembers the indexed encodings of the headers it sends again and again.

hpack's :class:`~hpack.Encoder` searches its tables, logs and serialises every header of every
request, in pure Python: for the APNs provider that was about a sixth of the CPU a push costs.
Yet most of an APNs request's headers (method, scheme, authority, topic, push type, priority,
provider token) are the same on every request of a connection, and once such a header is in the
static or the dynamic table its encoding is just its index, which stays right until the dynamic
table changes (an entry added or evicted, or the table resized).

:class:`MemoEncoder` is hpack's encoder with that memo: a header whose encoding did not change the
table is remembered, and the memo is emptied whenever the table changes, so every byte it emits is
what hpack itself would emit at that point. It helps most when the headers unique to a request
are sent never-indexed (``hpack.NeverIndexedHeaderTuple``), which keeps the dynamic table still.

It also sends every literal raw, not Huffman-coded: the literals left are those unique headers
(an APNs request's ``:path`` with the device token, its ``apns-id``), hex digits that Huffman coding
shortens by about a third (some 35 bytes a request) for 20 us of CPU, three times what the whole
encoding costs without it. RFC 7541 lets an encoder choose either form for any literal.
"""

from __future__ import annotations

from typing import Any

from hpack import Encoder
from hpack.table import HeaderTable


class VersionedHeaderTable(HeaderTable):
    """hpack's header table, counting its changes: an index found in it holds until the next one."""

    def __init__(self) -> None:
        super().__init__()
        self.version = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.version += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, value: int) -> None:
        self.version += 1
        HeaderTable.maxsize.fset(self, value)  # type: ignore[attr-defined]


class MemoEncoder(Encoder):
    """:class:`hpack.Encoder` that reuses the bytes of headers found whole in its tables."""

    def __init__(self) -> None:
        super().__init__()
        self.header_table: VersionedHeaderTable = VersionedHeaderTable()
        self._indexed: dict[tuple[bytes, bytes], bytes] = {}
        self._version = 0

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        """hpack's ``encode``, with literals always sent raw (see the module's docstring)."""
        return super().encode(headers, huffman=False)

    def add(self, to_add: tuple[bytes, bytes], sensitive: bool, huffman: bool = False) -> bytes:
        table = self.header_table
        if table.version != self._version:
            self._indexed.clear()  # every remembered index may point elsewhere now
            self._version = table.version
        if not sensitive:
            remembered = self._indexed.get(to_add)
            if remembered is not None:
                return remembered
        encoded = super().add(to_add, sensitive, huffman)
        if not sensitive and table.version == self._version:
            # Not added to the table, so found whole in it: the encoding is its index.
            self._indexed[to_add] = encoded
        return encoded
