"""Client-side encryption of 0G files, byte-compatible with the official clients.

Written from specs/0g-interop.md section 8 and checked against
shared/conformance/encryption-v1.json and encryption-v2.json. The stored file is
`header || AES-256-CTR(key, plaintext)`:

- v1: header = 0x01 || nonce (16 bytes); the key is the caller's 32 bytes.
- v2: header = 0x02 || ephemeral secp256k1 public key (33 bytes, compressed) ||
  nonce; key = HKDF-SHA256(ECDH x-coordinate, salt empty, info below, 32 bytes).

The counter block for plaintext offset o is (nonce + o // 16) mod 2**128, big
endian, so any byte range can be encrypted or decrypted on its own. There is no
authentication tag: a wrong key yields garbage, and the Merkle root (computed
over header and ciphertext) is what protects the stored bytes.

`cryptography` is imported inside the functions that use it, to keep start-up fast.
"""

from __future__ import annotations

import io
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from zerog_cli.errors import ConfigError, IntegrityError, UsageError, ZerogError
from zerog_cli.infra.files import pread_all

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

VERSION_V1 = 1
VERSION_V2 = 2
KEY_SIZE = 32
NONCE_SIZE = 16
PUBLIC_KEY_SIZE = 33
HEADER_SIZE_V1 = 1 + NONCE_SIZE
HEADER_SIZE_V2 = 1 + PUBLIC_KEY_SIZE + NONCE_SIZE
ECIES_HKDF_INFO = b"0g-storage-client/ecies/v1/aes-256"

_HEADER_SIZES = {VERSION_V1: HEADER_SIZE_V1, VERSION_V2: HEADER_SIZE_V2}
_BLOCK = 16
_COUNTER_MODULUS = 1 << 128
_SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HEX_KEY = re.compile(r"(0x)?[0-9a-fA-F]{64}\Z")
_HEX = re.compile(r"(0x)?([0-9a-fA-F]{2})+\Z")


@dataclass(frozen=True)
class EncryptionHeader:
    """The unencrypted prefix of an encrypted file."""

    version: int
    nonce: bytes
    ephemeral_public_key: bytes | None = None
    """v2 only: the sender's one-time public key, 33 bytes compressed."""

    def __post_init__(self) -> None:
        if self.version not in _HEADER_SIZES:
            raise UsageError(f"unknown encryption format version {self.version}")
        if len(self.nonce) != NONCE_SIZE:
            raise UsageError(f"an encryption nonce is {NONCE_SIZE} bytes, not {len(self.nonce)}")
        needs_key = self.version == VERSION_V2
        if needs_key != (self.ephemeral_public_key is not None) or (
            needs_key and len(self.ephemeral_public_key or b"") != PUBLIC_KEY_SIZE
        ):
            raise UsageError("a v2 header, and only a v2 header, carries a 33-byte public key")

    @property
    def size(self) -> int:
        return _HEADER_SIZES[self.version]

    def to_bytes(self) -> bytes:
        return bytes([self.version]) + (self.ephemeral_public_key or b"") + self.nonce


def header_size(version: int) -> int:
    """Header bytes of format `version` (17 for v1, 50 for v2)."""
    try:
        return _HEADER_SIZES[version]
    except KeyError:
        raise UsageError(f"unknown encryption format version {version}") from None


def header_version(data: bytes) -> int | None:
    """The format version announced by the first byte of `data`, or None if it is not one.

    The format has no magic number: a plain file that starts with 0x01 or 0x02
    looks encrypted. Only the key holder can tell, by decrypting.
    """
    if data and data[0] in _HEADER_SIZES:
        return data[0]
    return None


def parse_header(data: bytes) -> EncryptionHeader:
    """Parse the header at the start of `data` (which may hold more bytes after it)."""
    version = header_version(data)
    if version is None:
        found = f"0x{data[0]:02x}" if data else "nothing"
        raise UsageError(f"not an encrypted 0G file: the first byte is {found}, not 0x01 or 0x02")
    size = _HEADER_SIZES[version]
    if len(data) < size:
        raise IntegrityError(
            f"encrypted file is {len(data)} bytes, shorter than its v{version} header ({size})"
        )
    if version == VERSION_V1:
        return EncryptionHeader(version, bytes(data[1:size]))
    return EncryptionHeader(
        version, bytes(data[1 + PUBLIC_KEY_SIZE : size]), bytes(data[1 : 1 + PUBLIC_KEY_SIZE])
    )


def new_header_v1(nonce: bytes | None = None) -> EncryptionHeader:
    """A v1 header with a fresh random nonce (or the given one, for tests)."""
    return EncryptionHeader(VERSION_V1, os.urandom(NONCE_SIZE) if nonce is None else nonce)


def new_header_v2(
    recipient_public_key: bytes | str,
    *,
    ephemeral_private_key: bytes | None = None,
    nonce: bytes | None = None,
) -> tuple[EncryptionHeader, bytes]:
    """A v2 header for `recipient_public_key` and the AES key it implies.

    The ephemeral key is random unless given (the conformance vectors fix it).
    """
    recipient = parse_public_key(recipient_public_key)
    ephemeral = ephemeral_private_key or _random_private_key()
    header = EncryptionHeader(
        VERSION_V2,
        os.urandom(NONCE_SIZE) if nonce is None else nonce,
        public_key_from_private(ephemeral),
    )
    return header, derive_ecies_key(ephemeral, recipient)


def _random_private_key() -> bytes:
    while True:
        key = os.urandom(KEY_SIZE)
        if 0 < int.from_bytes(key) < _SECP256K1_ORDER:
            return key


def _clean_secret_text(value: str | bytes) -> str | None:
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    return value.strip()


def parse_symmetric_key(
    value: str | bytes,
    *,
    name: str = "encryption key",
    error: type[ZerogError] = ConfigError,
) -> bytes:
    """A 32-byte AES key from 64 hex digits (optional 0x) or from 32 raw bytes.

    Raises `error` (ConfigError by default, UsageError for a command-line value)
    with a message that names `name` but never shows the value.
    """
    if isinstance(value, bytes) and len(value) == KEY_SIZE:
        return value
    text = _clean_secret_text(value)
    if text is None or not _HEX_KEY.match(text):
        raise error(f"{name} must be {KEY_SIZE} bytes written as 64 hex digits")
    return bytes.fromhex(text.removeprefix("0x"))


def parse_private_key(
    value: str | bytes,
    *,
    name: str = "private key",
    error: type[ZerogError] = ConfigError,
) -> bytes:
    """A 32-byte secp256k1 private key (hex or raw), checked to be in range."""
    key = parse_symmetric_key(value, name=name, error=error)
    if not 0 < int.from_bytes(key) < _SECP256K1_ORDER:
        raise error(f"{name} is not a valid secp256k1 private key")
    return key


def _public_key_object(value: bytes | str) -> ec.EllipticCurvePublicKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    raw: bytes | None = value if isinstance(value, bytes) else None
    if isinstance(value, str):
        text = value.strip()
        raw = bytes.fromhex(text.removeprefix("0x")) if _HEX.match(text) else None
    if raw is not None and len(raw) == 64:
        raw = b"\x04" + raw
    if raw is None or len(raw) not in (33, 65):
        raise UsageError(
            "a public key must be 33 (compressed), 64 or 65 (uncompressed) bytes, as bytes or hex"
        )
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), raw)
    except ValueError:
        raise UsageError("the public key is not a point on secp256k1") from None


def _compressed(key: ec.EllipticCurvePublicKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


def parse_public_key(value: bytes | str) -> bytes:
    """A secp256k1 public key (33, 64 or 65 bytes, raw or hex) as 33 compressed bytes."""
    return _compressed(_public_key_object(value))


def _private_key_object(private_key: bytes) -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    if len(private_key) != KEY_SIZE or not 0 < int.from_bytes(private_key) < _SECP256K1_ORDER:
        raise UsageError("a secp256k1 private key is 32 bytes in the curve's range")
    return ec.derive_private_key(int.from_bytes(private_key), ec.SECP256K1())


def public_key_from_private(private_key: bytes) -> bytes:
    """The compressed public key of a 32-byte secp256k1 private key."""
    return _compressed(_private_key_object(private_key).public_key())


def ecdh_shared_x(private_key: bytes, public_key: bytes | str) -> bytes:
    """The x-coordinate of private_key * public_key (32 bytes)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    return _private_key_object(private_key).exchange(ec.ECDH(), _public_key_object(public_key))


def derive_ecies_key(private_key: bytes, public_key: bytes | str) -> bytes:
    """The v2 AES key: HKDF-SHA256 over the ECDH x-coordinate (either side's pair)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    shared = ecdh_shared_x(private_key, public_key)
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=ECIES_HKDF_INFO).derive(
        shared
    )


def resolve_decryption_key(
    header: EncryptionHeader,
    *,
    symmetric_key: bytes | None = None,
    private_key: bytes | None = None,
) -> bytes:
    """The AES key for `header` from the key material the caller holds."""
    if header.version == VERSION_V1:
        if symmetric_key is None:
            raise UsageError(
                "the file is encrypted with format v1 (symmetric): an encryption key is needed"
            )
        if len(symmetric_key) != KEY_SIZE:
            raise UsageError(f"an encryption key is {KEY_SIZE} bytes")
        return symmetric_key
    if private_key is None:
        raise UsageError(
            "the file is encrypted with format v2 (ECIES): the recipient's private key is needed"
        )
    try:
        ephemeral = _public_key_object(header.ephemeral_public_key or b"")
    except UsageError:
        raise IntegrityError("the encryption header's ephemeral public key is invalid") from None
    return derive_ecies_key(private_key, _compressed(ephemeral))


class CtrStream:
    """AES-256-CTR from plaintext offset `offset` on: `update()` encrypts or decrypts in order."""

    def __init__(self, key: bytes, nonce: bytes, offset: int = 0) -> None:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        if len(key) != KEY_SIZE or len(nonce) != NONCE_SIZE or offset < 0:
            raise UsageError("AES-256-CTR needs a 32-byte key, a 16-byte nonce and an offset >= 0")
        counter = (int.from_bytes(nonce) + offset // _BLOCK) % _COUNTER_MODULUS
        block = counter.to_bytes(_BLOCK)
        self._context = Cipher(algorithms.AES(key), modes.CTR(block)).encryptor()
        skip = offset % _BLOCK
        if skip:
            self._context.update(bytes(skip))

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        return self._context.update(data)


def keystream_xor(
    key: bytes, nonce: bytes, offset: int, data: bytes | bytearray | memoryview
) -> bytes:
    """Encrypt or decrypt `data` that sits at plaintext offset `offset`."""
    return CtrStream(key, nonce, offset).update(data)


def encrypt_bytes(plaintext: bytes, key: bytes, header: EncryptionHeader) -> bytes:
    """`header || ciphertext` of an in-memory plaintext."""
    return header.to_bytes() + keystream_xor(key, header.nonce, 0, plaintext)


def decrypt_bytes(
    data: bytes, *, symmetric_key: bytes | None = None, private_key: bytes | None = None
) -> bytes:
    """The plaintext of an in-memory `header || ciphertext`."""
    decryptor = StreamDecryptor(symmetric_key=symmetric_key, private_key=private_key)
    plaintext = decryptor.update(data)
    decryptor.finish()
    return plaintext


class StreamEncryptor:
    """Turns plaintext pieces into `header || ciphertext` pieces, in order."""

    def __init__(self, key: bytes, header: EncryptionHeader) -> None:
        self._cipher = CtrStream(key, header.nonce)
        self._header: bytes | None = header.to_bytes()

    def update(self, plaintext: bytes | bytearray | memoryview) -> bytes:
        ciphertext = self._cipher.update(plaintext)
        if self._header is None:
            return ciphertext
        head, self._header = self._header, None
        return head + ciphertext

    def finish(self) -> bytes:
        """Whatever is still owed: the header, for an empty plaintext."""
        head, self._header = self._header or b"", None
        return head


class StreamDecryptor:
    """Turns `header || ciphertext`, fed in pieces of any size, back into plaintext.

    Give the key material you hold; the header decides which one is used.
    """

    def __init__(
        self, *, symmetric_key: bytes | None = None, private_key: bytes | None = None
    ) -> None:
        self._symmetric_key = symmetric_key
        self._private_key = private_key
        self._head = bytearray()
        self._cipher: CtrStream | None = None
        self.header: EncryptionHeader | None = None

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        if self._cipher is not None:
            return self._cipher.update(data)
        self._head += data
        if not self._head:
            return b""
        version = header_version(bytes(self._head[:1]))
        if version is None:
            parse_header(bytes(self._head[:1]))
        if len(self._head) < header_size(version or 0):
            return b""
        self.header = parse_header(bytes(self._head))
        key = resolve_decryption_key(
            self.header, symmetric_key=self._symmetric_key, private_key=self._private_key
        )
        self._cipher = CtrStream(key, self.header.nonce)
        rest = bytes(self._head[self.header.size :])
        self._head.clear()
        return self._cipher.update(rest)

    def finish(self) -> None:
        """Check that the stream held at least a whole header."""
        if self._cipher is None:
            parse_header(bytes(self._head))


class EncryptedReader(io.RawIOBase):
    """`header || ciphertext` of a plaintext file, as a seekable read-only stream.

    An upload hashes it once front to back (`tree_from_stream`), then reads any
    segment again with `read_at` (safe from several threads when the plaintext
    file has a descriptor) and gets the same bytes, because the nonce is fixed in
    the header.
    """

    def __init__(
        self,
        plaintext: BinaryIO,
        key: bytes,
        header: EncryptionHeader,
        *,
        plaintext_size: int | None = None,
        owns_plaintext: bool = False,
    ) -> None:
        super().__init__()
        if len(key) != KEY_SIZE:
            raise UsageError(f"an encryption key is {KEY_SIZE} bytes")
        self._plaintext = plaintext
        self._key = key
        self.header = header
        self._head = header.to_bytes()
        self._owns = owns_plaintext
        self._lock = threading.Lock()
        self._base = plaintext.tell()
        try:
            self._fd: int | None = plaintext.fileno()
        except (OSError, ValueError, AttributeError):
            self._fd = None
        if plaintext_size is None:
            plaintext_size = plaintext.seek(0, io.SEEK_END) - self._base
            plaintext.seek(self._base)
        self.plaintext_size = plaintext_size
        self.size = len(self._head) + plaintext_size
        self._position = 0

    @classmethod
    def from_path(
        cls, path: str | os.PathLike[str], key: bytes, header: EncryptionHeader
    ) -> EncryptedReader:
        """Open the plaintext file at `path`; closing the reader closes it."""
        return cls(open(Path(path), "rb"), key, header, owns_plaintext=True)

    def _read_plain(self, offset: int, length: int) -> bytes:
        if self._fd is not None:
            return pread_all(self._fd, self._base + offset, length)
        with self._lock:
            self._plaintext.seek(self._base + offset)
            return self._plaintext.read(length)

    def read_at(self, offset: int, length: int) -> bytes:
        """Bytes [offset, offset + length) of `header || ciphertext` (shorter at the end)."""
        if offset < 0 or length < 0:
            raise UsageError("read_at needs a non-negative offset and length")
        end = min(offset + length, self.size)
        if offset >= end:
            return b""
        head = self._head[offset:end]
        if end <= len(self._head):
            return head
        start = max(offset - len(self._head), 0)
        plain = self._read_plain(start, end - len(self._head) - start)
        if len(head) + len(plain) != end - offset:
            raise IntegrityError("the plaintext file changed size while it was being encrypted")
        return head + keystream_xor(self._key, self.header.nonce, start, plain)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read_at(self._position, len(view))
        view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        if not self.closed and self._owns:
            self._plaintext.close()
        super().close()
