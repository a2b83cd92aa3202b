"""A connection cut while a blob is read: nothing is applied, and the next run applies it all.

A small TCP proxy on loopback sits between the real azure-storage-blob client and Azurite. Armed,
it drops every connection once the blob service has sent it a given number of bytes, and refuses
new ones, as a network outage would; disarmed, it forwards everything. The client reads in 1 KiB
ranged GETs, so the export spans dozens of requests and the cut falls in the middle of it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from azure.storage.blob import ContainerClient
from flask import Flask

from sync.peers.azurite import Azurite, connection_string
from sync.sources.blob import BlobSource
from tests.sync.segments.exports import (
    SEG_VIP,
    export_name,
    make_profiles,
    members,
    run_import,
    single,
    snapshot,
    upload,
)
from tests.values import crm_id


class CuttingProxy:
    """Forwards 127.0.0.1:``port`` to the upstream port; cuts after ``cut_after`` bytes from upstream."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.cut_after: int | None = None
        self.sent = 0  # bytes from upstream since armed
        self.cut = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, cut_after: int) -> None:
        with self._lock:
            self.cut_after, self.sent = cut_after, 0
            self.cut.clear()

    def disarm(self) -> None:
        with self._lock:
            self.cut_after = None
            self.cut.clear()

    def stop(self) -> None:
        self._stopped.set()
        self.listener.close()
        self._drop_all()

    def _drop_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut.is_set():
                client.close()  # the outage goes on
                continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, downstream: bool) -> None:
        try:
            while data := source.recv(4096):
                if downstream:
                    with self._lock:
                        limit = self.cut_after
                        if limit is not None:
                            data = data[: max(0, limit - self.sent)]
                            self.sent += len(data)
                    if data:
                        target.sendall(data)
                    if limit is not None and self.sent >= limit:
                        self.cut.set()
                        self._drop_all()
                        return
                else:
                    target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def proxy(azurite: Azurite) -> Iterator[CuttingProxy]:
    cutting = CuttingProxy(azurite.port)
    yield cutting
    cutting.stop()


def test_a_connection_cut_mid_file_applies_nothing_and_the_next_run_applies_all(
    app: Flask, container: ContainerClient, proxy: CuttingProxy
) -> None:
    customers = [crm_id(n) for n in range(3000)]
    make_profiles(app, *customers)
    data = single([(c, "realized") for c in customers])  # about 70 KB
    name = export_name(SEG_VIP)
    upload(container, name, data)
    client = ContainerClient.from_connection_string(
        connection_string(proxy.port),
        container.container_name,
        max_single_get_size=1024,
        max_chunk_get_size=1024,
        retry_total=0,
    )
    source = BlobSource(client)
    before = snapshot(app)

    listing = 4096  # enough for the container listing; the cut comes about half way through the blob
    proxy.arm(listing + len(data) // 2)
    run = run_import(app, source=source)

    assert proxy.cut.is_set(), run.error
    assert run.status == "failed"
    assert run.error is not None and run.error.startswith(f"Azure Blob: reading {name}: ")
    assert snapshot(app) == before

    proxy.disarm()
    run = run_import(app, source=source)
    assert run.status == "succeeded", run.error
    assert run.summary["applied"] == len(customers)
    assert len(members(app, SEG_VIP)) == len(customers)
