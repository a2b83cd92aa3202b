"""MemoEncoder emits, header block by header block, exactly what hpack's own encoder emits."""

from __future__ import annotations

import random

from hpack import Decoder, Encoder, NeverIndexedHeaderTuple

from push.providers.hpack_memo import MemoEncoder

Header = tuple[bytes, bytes]


def request(rng: random.Random, number: int) -> list[Header]:
    """An APNs-like request: constant fields, per-request ones never indexed, a few that vary."""
    headers: list[Header] = [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        NeverIndexedHeaderTuple(b":path", b"/3/device/%064x" % number),
        (b":authority", b"127.0.0.1:8443"),
        NeverIndexedHeaderTuple(b"apns-id", b"7b0c3a2e-56a1-4c1e-9d7e-%012x" % number),
        (b"apns-topic", rng.choice([b"com.example.app", b"com.example.app.voip"])),
        (b"apns-push-type", rng.choice([b"alert", b"background"])),
        (b"apns-expiration", b"%d" % (1_790_000_000 + number // 50)),  # changes now and then
        (b"authorization", b"bearer " + rng.choice([b"a", b"b"]) * 180),
    ]
    if rng.random() < 0.05:
        headers.append((b"apns-collapse-id", b"%d" % rng.randrange(1000)))  # new entries: evictions
    if rng.random() < 0.01:
        headers.append((b"x-big", b"v" * 5000))  # larger than the table: hpack empties it
    return headers


def test_every_block_is_what_hpack_would_send_and_decodes_back() -> None:
    rng = random.Random(7)
    memo, plain, decoder = MemoEncoder(), Encoder(), Decoder(max_header_list_size=1 << 20)
    decoder.max_allowed_table_size = 1 << 16
    for number in range(3000):
        if number in (700, 1500, 2200):  # the peer changed SETTINGS_HEADER_TABLE_SIZE
            size = {700: 1024, 1500: 8192, 2200: 4096}[number]
            memo.header_table_size = plain.header_table_size = size
        headers = request(rng, number)
        block = memo.encode(headers)
        assert block == plain.encode(headers, huffman=False), number
        assert [(bytes(n), bytes(v)) for n, v in decoder.decode(block, raw=True)] == [
            (bytes(n), bytes(v)) for n, v in headers
        ]
    remembered = dict(memo._indexed)  # the memo is in use, not emptied on every block
    assert (b":method", b"POST") in remembered and (b":authority", b"127.0.0.1:8443") in remembered


def test_sensitive_headers_never_enter_the_table() -> None:
    memo = MemoEncoder()
    memo.encode([NeverIndexedHeaderTuple(b":path", b"/3/device/" + b"a" * 64)])
    assert len(memo.header_table.dynamic_entries) == 0
    memo.encode([(b"apns-topic", b"com.example.app")])
    assert len(memo.header_table.dynamic_entries) == 1
