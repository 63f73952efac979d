import os

import pytest

from appliance.errors import IntegrityError
from appliance.platform.blobstore import CHUNK_SIZE, MAGIC, BlobStore

RECORD = CHUNK_SIZE + 28
HEADER = len(MAGIC) + 4


@pytest.fixture
def store(tmp_path):
    return BlobStore(tmp_path)


@pytest.fixture
def dek():
    return os.urandom(32)


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17])
def test_roundtrip_and_ranges(store, dek, size):
    data = os.urandom(size)
    store.put("a1", dek, data)
    with store.open("a1", dek) as r:
        assert r.size == size and r.read_all() == data
        for start, end in [(0, 10), (CHUNK_SIZE - 5, CHUNK_SIZE + 5), (size // 2, size), (size, size + 10)]:
            assert b"".join(r.iter_range(start, end)) == data[start:end]


def test_ciphertext_has_no_plaintext(store, dek):
    data = b"KANARIEFAGEL " * 10000
    store.put("a1", dek, data)
    assert b"KANARIEFAGEL" not in store.path("a1").read_bytes()


def _blob(store, dek, chunks=3):
    store.put("a1", dek, os.urandom(chunks * CHUNK_SIZE + 100))
    return store.path("a1")


def test_bit_flip_detected(store, dek):
    p = _blob(store, dek)
    raw = bytearray(p.read_bytes())
    raw[HEADER + RECORD + 100] ^= 1
    p.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError), store.open("a1", dek) as r:
        r.read_all()


def test_truncation_at_chunk_boundary_detected(store, dek):
    p = _blob(store, dek)
    raw = p.read_bytes()
    p.write_bytes(raw[: HEADER + 2 * RECORD])  # drop the sealed final chunk: the rest is intact
    with pytest.raises(IntegrityError, match="chunk 1"):
        store.open("a1", dek)


def test_truncation_mid_chunk_detected(store, dek):
    p = _blob(store, dek)
    p.write_bytes(p.read_bytes()[:-7])
    with pytest.raises(IntegrityError):
        store.open("a1", dek)


def test_reordered_chunks_detected(store, dek):
    p = _blob(store, dek)
    raw = p.read_bytes()
    c0, c1 = raw[HEADER:HEADER + RECORD], raw[HEADER + RECORD:HEADER + 2 * RECORD]
    p.write_bytes(raw[:HEADER] + c1 + c0 + raw[HEADER + 2 * RECORD:])
    with pytest.raises(IntegrityError), store.open("a1", dek) as r:
        r.read_all()


def test_spliced_chunk_from_other_blob_detected(store, dek):
    # Same key, other blob id: the blob id in the associated data still catches it.
    store.put("b2", dek, os.urandom(3 * CHUNK_SIZE + 100))
    p = _blob(store, dek)
    other = store.path("b2").read_bytes()
    raw = p.read_bytes()
    p.write_bytes(raw[:HEADER + RECORD] + other[HEADER + RECORD:HEADER + 2 * RECORD] + raw[HEADER + 2 * RECORD:])
    with pytest.raises(IntegrityError), store.open("a1", dek) as r:
        r.read_all()


def test_wrong_key_rejected(store, dek):
    _blob(store, dek)
    with pytest.raises(IntegrityError):
        store.open("a1", os.urandom(32))


def test_failed_write_leaves_nothing(store, dek):
    w = store.writer("a1", dek)
    w.write(os.urandom(CHUNK_SIZE * 2))
    w.abort()
    assert list(store.root.iterdir()) == []
