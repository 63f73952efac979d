"""Encrypted blob store: chunked AES-256-GCM, one file per blob, one data key (DEK) per recording.

File layout:  header (MAGIC, chunk size) then fixed-size records  nonce(12) | ciphertext | tag(16).
Every record's associated data binds the header, the blob id, the chunk index and a final-chunk flag,
so bit flips, reordering, splicing chunks from another blob and truncation (the last surviving record
was not sealed as final) are all detected. Fixed-size records allow random access for HTTP range
requests without decrypting the whole file. Plaintext only ever exists in memory.
"""

from __future__ import annotations

import os
import secrets
import struct
from collections.abc import Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from appliance.errors import IntegrityError, NotFound

MAGIC = b"SSTB\x01"
CHUNK_SIZE = 64 * 1024
_HEADER = struct.Struct(">5sI")
_NONCE = 12
_TAG = 16
_OVERHEAD = _NONCE + _TAG


def _aad(header: bytes, blob_id: str, index: int, final: bool) -> bytes:
    return header + blob_id.encode() + struct.pack(">QB", index, 1 if final else 0)


class BlobWriter:
    """Streams plaintext in, writes sealed chunks to a temp file, publishes atomically on close()."""

    def __init__(self, path: Path, blob_id: str, dek: bytes, chunk_size: int = CHUNK_SIZE) -> None:
        self._path = path
        self._tmp = path.with_name(path.name + f".{secrets.token_hex(4)}.partial")
        self._blob_id = blob_id
        self._aead = AESGCM(dek)
        self._chunk_size = chunk_size
        self._header = _HEADER.pack(MAGIC, chunk_size)
        self._buf = bytearray()
        self._index = 0
        self._size = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self._tmp, "wb")  # noqa: SIM115 - closed in close()/abort()
        self._f.write(self._header)

    def _seal(self, data: bytes, final: bool) -> None:
        nonce = secrets.token_bytes(_NONCE)
        self._f.write(nonce + self._aead.encrypt(nonce, data, _aad(self._header, self._blob_id, self._index, final)))
        self._index += 1

    def write(self, data: bytes) -> None:
        self._buf += data
        self._size += len(data)
        # Keep at least one byte back so the final chunk is never empty unless the blob is.
        while len(self._buf) > self._chunk_size:
            self._seal(bytes(self._buf[: self._chunk_size]), final=False)
            del self._buf[: self._chunk_size]

    def close(self) -> int:
        self._seal(bytes(self._buf), final=True)
        self._buf.clear()
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self._tmp, self._path)
        return self._size

    def abort(self) -> None:
        self._f.close()
        self._tmp.unlink(missing_ok=True)


class BlobReader:
    """Random-access reader. Opening authenticates the final chunk, so truncation fails at open."""

    def __init__(self, path: Path, blob_id: str, dek: bytes) -> None:
        try:
            self._f = open(path, "rb")  # noqa: SIM115 - closed in close()
        except FileNotFoundError as exc:
            raise NotFound(f"Blob {blob_id} is missing") from exc
        self._blob_id = blob_id
        self._aead = AESGCM(dek)
        self._header = self._f.read(_HEADER.size)
        if len(self._header) != _HEADER.size:
            raise IntegrityError(f"Blob {blob_id}: header truncated")
        magic, self.chunk_size = _HEADER.unpack(self._header)
        if magic != MAGIC or not 0 < self.chunk_size <= 16 * 1024 * 1024:
            raise IntegrityError(f"Blob {blob_id}: not an encrypted blob of this store")
        body = os.fstat(self._f.fileno()).st_size - _HEADER.size
        record = self.chunk_size + _OVERHEAD
        full, rest = divmod(body, record)
        if rest == 0 and full > 0:
            self._chunks, last_len = full, self.chunk_size
        elif rest >= _OVERHEAD:
            self._chunks, last_len = full + 1, rest - _OVERHEAD
        else:
            raise IntegrityError(f"Blob {blob_id}: truncated or corrupt")
        self.size = (self._chunks - 1) * self.chunk_size + last_len
        self._last_plain = self._chunk(self._chunks - 1)

    def _chunk(self, index: int) -> bytes:
        if index == self._chunks - 1 and hasattr(self, "_last_plain"):
            return self._last_plain
        record = self.chunk_size + _OVERHEAD
        self._f.seek(_HEADER.size + index * record)
        raw = self._f.read(record)
        final = index == self._chunks - 1
        try:
            return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], _aad(self._header, self._blob_id, index, final))
        except InvalidTag as exc:
            raise IntegrityError(f"Blob {self._blob_id}: chunk {index} failed authentication "
                                 "(tampered, reordered, spliced or truncated)") from exc

    def iter_range(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Plaintext bytes [start, end) in chunk-sized pieces."""
        end = self.size if end is None else min(end, self.size)
        pos = max(0, start)
        while pos < end:
            index, offset = divmod(pos, self.chunk_size)
            piece = self._chunk(index)[offset: offset + (end - pos)]
            yield piece
            pos += len(piece)

    def read_all(self) -> bytes:
        return b"".join(self.iter_range())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, blob_id: str) -> Path:
        if not blob_id.isalnum():
            raise NotFound("Invalid blob id")
        return self.root / f"{blob_id}.blob"

    def writer(self, blob_id: str, dek: bytes) -> BlobWriter:
        return BlobWriter(self.path(blob_id), blob_id, dek)

    def put(self, blob_id: str, dek: bytes, data: bytes) -> int:
        w = self.writer(blob_id, dek)
        try:
            w.write(data)
            return w.close()
        except BaseException:
            w.abort()
            raise

    def open(self, blob_id: str, dek: bytes) -> BlobReader:
        return BlobReader(self.path(blob_id), blob_id, dek)

    def delete(self, blob_id: str) -> None:
        self.path(blob_id).unlink(missing_ok=True)
        self.delete_chunks(blob_id)

    # Live recordings arrive in numbered pieces (appliance/live.py): each is a small blob of its own, named
    # after the recording so deleting the recording (or the orphan sweep) takes its pieces with it. The
    # piece's number is part of the authenticated blob id, so pieces cannot be swapped or renumbered.

    def chunk_path(self, blob_id: str, seq: int) -> Path:
        return self.path(blob_id).with_name(f"{blob_id}.c{int(seq):07d}.blob")

    def put_chunk(self, blob_id: str, seq: int, dek: bytes, data: bytes) -> None:
        """Store one piece durably (file and directory entry fsynced) before returning."""
        path = self.chunk_path(blob_id, seq)
        w = BlobWriter(path, f"{blob_id}.c{int(seq)}", dek)
        try:
            w.write(data)
            w.close()
        except BaseException:
            w.abort()
            raise
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself must survive a power cut: the caller acknowledges after this
        finally:
            os.close(fd)

    def open_chunk(self, blob_id: str, seq: int, dek: bytes) -> BlobReader:
        return BlobReader(self.chunk_path(blob_id, seq), f"{blob_id}.c{int(seq)}", dek)

    def delete_chunks(self, blob_id: str) -> None:
        self.path(blob_id)  # validates the id before it goes into a glob
        for path in self.root.glob(f"{blob_id}.c*.blob"):
            path.unlink(missing_ok=True)
