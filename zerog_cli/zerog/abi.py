"""The Ethereum ABI toolkit every contract module shares: Keccak-256, EIP-55
addresses, function and custom-error encoding, revert decoding.

Revert data is decoded in one place (:func:`decode_revert`): Solidity's
``Error(string)`` and ``Panic(uint256)`` are always known, a contract module
passes its own custom errors. The sentence says why the call reverted and is
read after "reverted: " or "execution reverted: ".

`eth_abi` and `sha3` are imported inside the functions that need them:
importing this module must stay cheap because the CLI imports it at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from zerog_cli.errors import RemoteError, UsageError, ZerogError
from zerog_cli.zerog.jsonrpc import one_line


def keccak256(data: bytes) -> bytes:
    """Ethereum's Keccak-256 (not NIST SHA3-256)."""
    import sha3

    return bytes(sha3.keccak_256(data).digest())


def checksum_address(address: str | bytes) -> str:
    """EIP-55 form of an address (hex text or 20 raw bytes); refuses anything else."""
    if isinstance(address, bytes):
        address = address.hex()
    text = address[2:] if address[:2] in ("0x", "0X") else address
    if len(text) != 40:
        raise UsageError(f"not an address: {address!r}")
    try:
        int(text, 16)
    except ValueError:
        raise UsageError(f"not an address: {address!r}") from None
    lower = text.lower()
    digest = keccak256(lower.encode("ascii")).hex()
    chars = [c.upper() if int(digest[i], 16) >= 8 else c for i, c in enumerate(lower)]
    return "0x" + "".join(chars)


def selector_of(signature: str) -> bytes:
    """The 4-byte selector of a function or error signature such as ``Error(string)``."""
    return keccak256(signature.encode("ascii"))[:4]


class AbiFunction:
    """One contract function: selector, input encoding and output decoding."""

    def __init__(self, name: str, inputs: Sequence[str] = (), outputs: Sequence[str] = ()) -> None:
        self.name = name
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.signature = f"{name}({','.join(self.inputs)})"

    @cached_property
    def selector(self) -> bytes:
        return selector_of(self.signature)

    def encode(self, *args: Any) -> bytes:
        """Calldata: selector followed by the ABI-encoded arguments."""
        from eth_abi import encode
        from eth_abi.exceptions import EncodingError

        try:
            return self.selector + encode(list(self.inputs), list(args))
        except EncodingError as exc:
            raise UsageError(f"bad arguments for {self.signature}: {exc}") from None

    def decode_input(self, calldata: bytes) -> tuple[Any, ...]:
        """Arguments of a call to this function (selector included in ``calldata``)."""
        from eth_abi import decode

        if calldata[:4] != self.selector:
            raise ValueError(f"calldata is not a call to {self.signature}")
        return tuple(decode(list(self.inputs), calldata[4:]))

    def encode_output(self, *values: Any) -> bytes:
        from eth_abi import encode

        return encode(list(self.outputs), list(values))

    def decode_output(self, data: bytes) -> tuple[Any, ...]:
        from eth_abi import decode

        try:
            return tuple(decode(list(self.outputs), data))
        except Exception as exc:  # eth_abi raises several unrelated types on short data
            raise RemoteError(
                f"{self.name} returned data that does not decode as {self.outputs}: {exc}",
                kind="fatal",
            ) from None


@dataclass(frozen=True)
class DecodedRevert:
    """A revert reason in readable form; ``name`` is None when the selector is unknown."""

    name: str | None
    args: tuple[Any, ...]
    message: str
    selector: bytes


class AbiError:
    """A Solidity custom error: its selector, arguments and a sentence for humans."""

    def __init__(
        self,
        name: str,
        inputs: Sequence[str],
        describe: Callable[[tuple[Any, ...]], str],
        exception: type[ZerogError] = RemoteError,
    ) -> None:
        self.name = name
        self.inputs = tuple(inputs)
        self.signature = f"{name}({','.join(self.inputs)})"
        self.describe = describe
        self.exception = exception

    @cached_property
    def selector(self) -> bytes:
        return selector_of(self.signature)

    def encode(self, *args: Any) -> bytes:
        """Revert data as a contract produces it (used by the devnet contracts)."""
        from eth_abi import encode

        return self.selector + encode(list(self.inputs), list(args))

    def decode(self, data: bytes) -> tuple[Any, ...]:
        from eth_abi import decode

        values = tuple(decode(list(self.inputs), data[4:]))
        return tuple(
            checksum_address(v) if t == "address" else v
            for t, v in zip(self.inputs, values, strict=True)
        )


class ContractAbi:
    """The functions and custom errors of one contract, looked up by name or selector."""

    def __init__(self, name: str, functions: Sequence[AbiFunction], errors: Sequence[AbiError]):
        self.name = name
        self.functions = {f.name: f for f in functions}
        self.errors = {e.name: e for e in errors}

    def function(self, name: str) -> AbiFunction:
        return self.functions[name]

    def error(self, name: str) -> AbiError:
        return self.errors[name]

    def function_for(self, calldata: bytes) -> AbiFunction | None:
        """The function a calldata's selector names, or None."""
        for function in self.functions.values():
            if function.selector == calldata[:4]:
                return function
        return None


def revert_data_from(error: BaseException) -> bytes | None:
    """Revert data carried by an eth_call failure, or None if it is not a revert.

    Accepts what JSON-RPC nodes put in ``error.data``: a hex string, raw bytes,
    or an object with a nested ``data`` (Hardhat style).
    """
    data: object = getattr(error, "data", None)
    for _ in range(3):
        if isinstance(data, dict):
            data = data.get("data")
            continue
        if isinstance(data, bytes | bytearray):
            return bytes(data)
        if isinstance(data, str) and data.startswith("0x"):
            try:
                return bytes.fromhex(data[2:])
            except ValueError:
                return None
        return None
    return None


ERROR_STRING = AbiError("Error", ["string"], lambda a: one_line(a[0]))
"""Solidity's ``require(cond, "reason")`` revert."""
PANIC = AbiError("Panic", ["uint256"], lambda a: f"panic code {a[0]:#x}")
"""Solidity's failed assertion, overflow or bad index (the code says which)."""


def decode_revert(data: bytes, errors: Sequence[AbiError] = ()) -> DecodedRevert:
    """Name, arguments and a readable sentence for a revert's data.

    ``errors`` are the custom errors of the contract called; ``Error(string)``
    and ``Panic(uint256)`` are always recognised.
    """
    if not data:
        return DecodedRevert(None, (), "no reason given (a contract requirement was not met)", b"")
    for error in (*errors, ERROR_STRING, PANIC):
        if data[:4] == error.selector:
            try:
                args = error.decode(data)
            except Exception:  # truncated data: keep the name, say the arguments are unreadable
                return DecodedRevert(
                    error.name, (), f"{error.name} (arguments unreadable)", error.selector
                )
            return DecodedRevert(error.name, args, error.describe(args), error.selector)
    return DecodedRevert(None, (), f"unknown error 0x{data[:4].hex()}", data[:4])
