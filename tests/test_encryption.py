"""Client-side encryption v1/v2 against the SDK's vectors, streaming and random access."""

from __future__ import annotations

import hashlib
import io
import random
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conformance import load_vectors
from zerog_cli.errors import ConfigError, IntegrityError, UsageError
from zerog_cli.zerog import encryption as enc
from zerog_cli.zerog.merkle import SEGMENT_SIZE, tree_from_bytes, tree_from_stream

V1 = load_vectors("encryption-v1.json")
V2 = load_vectors("encryption-v2.json")


@lru_cache(maxsize=8)
def plaintext(expression: str, length: int) -> bytes:
    data = eval(expression, {"hashlib": hashlib, "n": length})
    assert isinstance(data, bytes) and len(data) == length
    return data


def vector_plaintext(document: dict[str, Any], vector: dict[str, Any]) -> bytes:
    data = plaintext(document["plaintext_generator"]["python"], vector["plaintext_len"])
    assert hashlib.sha256(data).hexdigest() == vector["plaintext_sha256"]
    return data


def check_encrypted_stream(encrypted: bytes, vector: dict[str, Any]) -> None:
    assert len(encrypted) == vector["encrypted_len"]
    assert hashlib.sha256(encrypted).hexdigest() == vector["encrypted_sha256"]
    if "encrypted_hex" in vector:
        assert encrypted.hex() == vector["encrypted_hex"]
    else:
        assert encrypted[:64].hex() == vector["encrypted_first64_hex"]
    tree = tree_from_bytes(encrypted)
    assert tree.root_hex == vector["merkle_root"]
    assert [node.to_json() for node in tree.submission_nodes] == vector["submission_nodes"]


def check_offset_slices(
    clear: bytes, key: bytes, header: enc.EncryptionHeader, vector: dict[str, Any]
) -> None:
    reader = enc.EncryptedReader(io.BytesIO(clear), key, header)
    for piece in vector.get("offset_slices", []):
        clear = bytes.fromhex(piece["plaintext_hex"])
        assert len(clear) == piece["len"]
        offset = piece["plaintext_offset"]
        assert piece["encrypted_stream_offset"] == offset + header.size
        cipher = enc.keystream_xor(key, header.nonce, offset, clear)
        assert cipher.hex() == piece["ciphertext_hex"]
        assert reader.read_at(piece["encrypted_stream_offset"], piece["len"]) == cipher


@pytest.mark.parametrize("vector", V1["vectors"], ids=[v["id"] for v in V1["vectors"]])
def test_v1_vector(vector: dict[str, Any]) -> None:
    clear = vector_plaintext(V1, vector)
    key = bytes.fromhex(vector["key_hex"])
    header = enc.new_header_v1(bytes.fromhex(vector["nonce_hex"]))
    assert header.to_bytes().hex() == vector["header_hex"]
    assert header.size == enc.HEADER_SIZE_V1 == 17
    encrypted = enc.encrypt_bytes(clear, key, header)
    check_encrypted_stream(encrypted, vector)
    assert tree_from_bytes(clear).root_hex == vector["plaintext_merkle_root"]
    parsed = enc.parse_header(encrypted)
    assert parsed == header and enc.header_version(encrypted) == 1
    assert enc.decrypt_bytes(encrypted, symmetric_key=key) == clear
    check_offset_slices(clear, key, header, vector)
    reader = enc.EncryptedReader(io.BytesIO(clear), key, header)
    assert reader.size == len(encrypted)
    assert reader.read() == encrypted


@pytest.mark.parametrize("vector", V2["vectors"], ids=[v["id"] for v in V2["vectors"]])
def test_v2_vector(vector: dict[str, Any]) -> None:
    clear = vector_plaintext(V2, vector)
    recipient_private = bytes.fromhex(vector["recipient_private_key_hex"])
    ephemeral_private = bytes.fromhex(vector["ephemeral_private_key_hex"])
    recipient_public = vector["recipient_public_key_compressed_hex"]
    ephemeral_public = vector["ephemeral_public_key_compressed_hex"]
    assert enc.public_key_from_private(recipient_private).hex() == recipient_public
    assert enc.public_key_from_private(ephemeral_private).hex() == ephemeral_public
    shared = vector["ecdh_shared_x_hex"]
    assert enc.ecdh_shared_x(recipient_private, ephemeral_public).hex() == shared
    assert enc.ecdh_shared_x(ephemeral_private, recipient_public).hex() == shared
    assert vector["hkdf_info_ascii"].encode() == enc.ECIES_HKDF_INFO
    key_hex = vector["derived_aes_key_hex"]
    assert enc.derive_ecies_key(recipient_private, ephemeral_public).hex() == key_hex
    header, key = enc.new_header_v2(
        recipient_public,
        ephemeral_private_key=ephemeral_private,
        nonce=bytes.fromhex(vector["nonce_hex"]),
    )
    assert key.hex() == key_hex
    assert header.to_bytes().hex() == vector["header_hex"]
    assert header.size == enc.HEADER_SIZE_V2 == 50
    encrypted = enc.encrypt_bytes(clear, key, header)
    check_encrypted_stream(encrypted, vector)
    assert tree_from_bytes(clear).root_hex == vector["plaintext_merkle_root"]
    assert enc.parse_header(encrypted) == header
    assert enc.decrypt_bytes(encrypted, private_key=recipient_private) == clear
    check_offset_slices(clear, key, header, vector)


def test_encrypted_reader_hashes_to_the_vector_root_pooled() -> None:
    vector = next(v for v in V1["vectors"] if v["id"] == "v1-plain-1100000")
    clear = vector_plaintext(V1, vector)
    header = enc.new_header_v1(bytes.fromhex(vector["nonce_hex"]))
    reader = enc.EncryptedReader(io.BytesIO(clear), bytes.fromhex(vector["key_hex"]), header)
    tree, digest = tree_from_stream(
        reader, workers=2, pool_min_bytes=SEGMENT_SIZE, block_size=SEGMENT_SIZE
    )
    assert tree.root_hex == vector["merkle_root"]
    assert digest == vector["encrypted_sha256"]


def test_encrypted_reader_from_path_reads_segments_again(tmp_path: Path) -> None:
    clear = random.Random(1).randbytes(3 * SEGMENT_SIZE + 99)
    path = tmp_path / "clear.bin"
    path.write_bytes(clear)
    key = bytes(range(32))
    header = enc.new_header_v1()
    expected = enc.encrypt_bytes(clear, key, header)
    with enc.EncryptedReader.from_path(path, key, header) as reader:
        tree, _ = tree_from_stream(reader, workers=1)
        assert tree == tree_from_bytes(expected)
        for index in range(tree.num_data_segments):
            offset, length = tree.segment_wire_range(index)
            assert reader.read_at(offset, length) == expected[offset : offset + length]
        assert reader.read_at(len(expected) - 5, 100) == expected[-5:]
        assert reader.read_at(len(expected) + 5, 10) == b""
        assert reader.seek(-3, io.SEEK_END) == len(expected) - 3
        assert reader.read() == expected[-3:]
    assert reader.closed


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(0, 5000),
    pieces=st.lists(st.integers(1, 700), min_size=1, max_size=8),
    version=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**32),
)
def test_streaming_equals_one_shot(size: int, pieces: list[int], version: int, seed: int) -> None:
    rng = random.Random(seed)
    clear = rng.randbytes(size)
    recipient_private = bytes.fromhex(V2["vectors"][0]["recipient_private_key_hex"])
    if version == 1:
        key = rng.randbytes(32)
        header = enc.new_header_v1(rng.randbytes(16))
        keys: dict[str, bytes] = {"symmetric_key": key}
    else:
        header, key = enc.new_header_v2(enc.public_key_from_private(recipient_private))
        keys = {"private_key": recipient_private}
    one_shot = enc.encrypt_bytes(clear, key, header)

    def split(data: bytes) -> list[bytes]:
        out, offset, turn = [], 0, 0
        while offset < len(data):
            step = pieces[turn % len(pieces)]
            out.append(data[offset : offset + step])
            offset += step
            turn += 1
        return out

    encryptor = enc.StreamEncryptor(key, header)
    streamed = b"".join(encryptor.update(piece) for piece in split(clear)) + encryptor.finish()
    assert streamed == one_shot

    decryptor = enc.StreamDecryptor(**keys)
    decrypted = b"".join(decryptor.update(piece) for piece in split(one_shot))
    decryptor.finish()
    assert decrypted == clear
    assert decryptor.header == header

    reader = enc.EncryptedReader(io.BytesIO(clear), key, header)
    assert b"".join(iter(lambda: reader.read(pieces[0]), b"")) == one_shot
    for _ in range(10):
        offset = rng.randrange(0, len(one_shot) + 3)
        length = rng.randrange(0, 600)
        assert reader.read_at(offset, length) == one_shot[offset : offset + length]


def test_counter_carries_across_64_and_128_bits() -> None:
    key = bytes(32)
    for nonce_hex in ("0000000000000000fffffffffffffffe", "fffffffffffffffffffffffffffffffe"):
        nonce = bytes.fromhex(nonce_hex)
        stream = enc.keystream_xor(key, nonce, 0, bytes(80))
        for offset in (1, 15, 16, 17, 33, 47, 63):
            assert enc.keystream_xor(key, nonce, offset, bytes(80 - offset)) == stream[offset:]


def test_header_errors() -> None:
    with pytest.raises(UsageError, match="not an encrypted 0G file: the first byte is 0x03"):
        enc.parse_header(b"\x03" + bytes(60))
    with pytest.raises(UsageError, match="first byte is nothing"):
        enc.parse_header(b"")
    with pytest.raises(IntegrityError, match="shorter than its v1 header"):
        enc.parse_header(b"\x01" + bytes(10))
    with pytest.raises(IntegrityError, match="shorter than its v2 header"):
        enc.parse_header(b"\x02" + bytes(40))
    assert enc.header_version(b"\x00abc") is None
    assert enc.header_size(2) == 50
    with pytest.raises(UsageError):
        enc.header_size(7)
    with pytest.raises(UsageError):
        enc.EncryptionHeader(1, bytes(15))
    with pytest.raises(UsageError):
        enc.EncryptionHeader(1, bytes(16), bytes(33))
    with pytest.raises(UsageError):
        enc.EncryptionHeader(2, bytes(16))


def test_decryption_needs_the_right_kind_of_key() -> None:
    v1 = enc.encrypt_bytes(b"hello", bytes(32), enc.new_header_v1())
    private = bytes.fromhex(V2["vectors"][0]["recipient_private_key_hex"])
    header, key = enc.new_header_v2(enc.public_key_from_private(private))
    v2 = enc.encrypt_bytes(b"hello", key, header)
    with pytest.raises(UsageError, match="format v1"):
        enc.decrypt_bytes(v1, private_key=private)
    with pytest.raises(UsageError, match="format v2"):
        enc.decrypt_bytes(v2, symmetric_key=bytes(32))
    assert enc.decrypt_bytes(v2, private_key=private) == b"hello"
    forged = bytearray(v2)
    forged[1] = 0x05
    with pytest.raises(IntegrityError, match="ephemeral public key is invalid"):
        enc.decrypt_bytes(bytes(forged), private_key=private)
    truncated = enc.StreamDecryptor(symmetric_key=bytes(32))
    assert truncated.update(v1[:10]) == b""
    with pytest.raises(IntegrityError, match="shorter than its v1 header"):
        truncated.finish()
    with pytest.raises(UsageError, match="not an encrypted 0G file"):
        enc.StreamDecryptor(symmetric_key=bytes(32)).update(b"\x09")


SECRET = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


def test_symmetric_key_parsing_never_shows_the_value() -> None:
    expected = bytes.fromhex(SECRET)
    assert enc.parse_symmetric_key(SECRET) == expected
    assert enc.parse_symmetric_key("0x" + SECRET.upper()) == expected
    assert enc.parse_symmetric_key((SECRET + "\n").encode()) == expected
    assert enc.parse_symmetric_key(expected) == expected
    for bad in (SECRET[:-2], SECRET + "00", "zz" * 32, "", b"\xff" * 31):
        with pytest.raises(ConfigError) as caught:
            enc.parse_symmetric_key(bad, name="ENCRYPTION_KEY")
        assert "ENCRYPTION_KEY" in str(caught.value)
        if bad:
            shown = bad if isinstance(bad, str) else bad.hex()
            assert shown[:16] not in str(caught.value)
    with pytest.raises(UsageError, match="--key"):
        enc.parse_symmetric_key("nope", name="--key", error=UsageError)


def test_private_and_public_key_parsing() -> None:
    vector = V2["vectors"][0]
    private = enc.parse_private_key(vector["recipient_private_key_hex"])
    compressed = bytes.fromhex(vector["recipient_public_key_compressed_hex"])
    assert enc.public_key_from_private(private) == compressed
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), compressed)
    uncompressed = point.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    for form in (compressed, uncompressed, uncompressed[1:], "0x" + uncompressed.hex()):
        assert enc.parse_public_key(form) == compressed
    with pytest.raises(UsageError, match="33"):
        enc.parse_public_key(bytes(20))
    with pytest.raises(UsageError, match="not a point"):
        enc.parse_public_key(b"\x02" + bytes(32))
    with pytest.raises(ConfigError, match="not a valid secp256k1"):
        enc.parse_private_key("00" * 32)
    with pytest.raises(ConfigError, match="not a valid secp256k1"):
        enc.parse_private_key("ff" * 32)


def test_fresh_headers_are_random() -> None:
    assert enc.new_header_v1().nonce != enc.new_header_v1().nonce
    private = bytes(31) + b"\x07"
    first, key_one = enc.new_header_v2(enc.public_key_from_private(private))
    second, key_two = enc.new_header_v2(enc.public_key_from_private(private))
    assert first.ephemeral_public_key != second.ephemeral_public_key and key_one != key_two
    assert enc.resolve_decryption_key(first, private_key=private) == key_one
