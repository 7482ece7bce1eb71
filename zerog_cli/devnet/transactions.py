"""Decoding of signed raw transactions: legacy (EIP-155), EIP-2930 and EIP-1559.

ethers 6 sends type 2 when the latest block has ``baseFeePerGas`` and
legacy EIP-155 otherwise (specs/0g-interop.md 2.3); web3.py-based tools send
legacy. The sender is recovered with eth-account. Errors carry geth's wording
so a client sees what a real node would say.
"""

from __future__ import annotations

from dataclasses import dataclass

from zerog_cli.zerog.abi import keccak256


class TransactionError(Exception):
    """A raw transaction a node would refuse before executing it."""


@dataclass(frozen=True)
class SignedTransaction:
    """The fields of a decoded transaction. Addresses are lowercase ``0x`` hex."""

    raw: bytes
    hash: bytes
    type: int
    chain_id: int | None
    nonce: int
    gas: int
    gas_price: int | None
    max_fee_per_gas: int | None
    max_priority_fee_per_gas: int | None
    to: str | None
    value: int
    data: bytes
    v: int
    r: int
    s: int
    sender: str

    @property
    def fee_cap(self) -> int:
        """The most the sender pays per gas (gasPrice or maxFeePerGas)."""
        if self.max_fee_per_gas is not None:
            return self.max_fee_per_gas
        return self.gas_price or 0

    def effective_gas_price(self, base_fee: int) -> int:
        """Price per gas actually charged in a block with ``base_fee``."""
        if self.max_fee_per_gas is None:
            return self.gas_price or 0
        tip = self.max_priority_fee_per_gas or 0
        return min(self.max_fee_per_gas, base_fee + tip)


def _int(item: bytes) -> int:
    if len(item) > 1 and item[0] == 0:
        raise TransactionError("rlp: non-canonical integer (leading zero bytes)")
    return int.from_bytes(item, "big")


def _address(item: bytes) -> str | None:
    if len(item) == 0:
        return None
    if len(item) != 20:
        raise TransactionError("rlp: input string too long for common.Address")
    return "0x" + item.hex()


def _bytes_list(value: object, expected: int, what: str) -> list[bytes]:
    if not isinstance(value, list) or len(value) != expected:
        raise TransactionError(f"rlp: wrong number of fields in {what} transaction")
    return value


SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _recover(signing_payload: bytes, recovery_id: int, r: int, s: int) -> str:
    """The address that signed ``keccak256(signing_payload)``.

    Uses eth-keys directly: importing eth-account costs seconds, which would
    delay the devnet's first transaction.
    """
    from eth_keys import keys

    if recovery_id not in (0, 1) or not 0 < r < SECP256K1_N or not 0 < s <= SECP256K1_N // 2:
        raise TransactionError("invalid sender: invalid transaction v, r, s values")
    try:
        signature = keys.Signature(vrs=(recovery_id, r, s))
        public_key = signature.recover_public_key_from_msg_hash(keccak256(signing_payload))
    except Exception as error:  # eth-keys raises several unrelated classes
        raise TransactionError(f"invalid sender: {error}") from error
    return str(public_key.to_checksum_address()).lower()


def decode_raw_transaction(raw: bytes) -> SignedTransaction:
    """Decode and authenticate a signed transaction. Raises `TransactionError`."""
    import rlp

    if not raw:
        raise TransactionError("typed transaction too short")
    tx_hash = keccak256(raw)
    if raw[0] >= 0xC0:
        try:
            fields = _bytes_list(rlp.decode(raw), 9, "legacy")
        except rlp.exceptions.DecodingError as error:
            raise TransactionError(f"rlp: {error}") from error
        nonce, gas_price, gas, to, value, data, v, r, s = fields
        v_int = _int(v)
        if v_int in (27, 28):
            chain_id = None
            payload = rlp.encode(fields[:6])
            recovery_id = v_int - 27
        elif v_int >= 35:
            chain_id = (v_int - 35) // 2
            payload = rlp.encode([*fields[:6], chain_id, 0, 0])
            recovery_id = v_int - 35 - 2 * chain_id
        else:
            raise TransactionError("invalid sender: invalid transaction v, r, s values")
        return SignedTransaction(
            raw=raw,
            hash=tx_hash,
            type=0,
            chain_id=chain_id,
            nonce=_int(nonce),
            gas=_int(gas),
            gas_price=_int(gas_price),
            max_fee_per_gas=None,
            max_priority_fee_per_gas=None,
            to=_address(to),
            value=_int(value),
            data=bytes(data),
            v=v_int,
            r=_int(r),
            s=_int(s),
            sender=_recover(payload, recovery_id, _int(r), _int(s)),
        )
    tx_type = raw[0]
    if tx_type not in (1, 2):
        raise TransactionError("transaction type not supported")
    try:
        decoded = rlp.decode(raw[1:])
    except rlp.exceptions.DecodingError as error:
        raise TransactionError(f"rlp: {error}") from error
    if tx_type == 1:
        # [chainId, nonce, gasPrice, gas, to, value, data, accessList, y, r, s]
        items = _bytes_list(decoded, 11, "access list")
        fees: tuple[int | None, int | None, int | None] = (_int(items[2]), None, None)
        rest = items[3:]
    else:
        # [chainId, nonce, tip, feeCap, gas, to, value, data, accessList, y, r, s]
        items = _bytes_list(decoded, 12, "dynamic fee")
        fees = (None, _int(items[3]), _int(items[2]))
        rest = items[4:]
    gas_item, to_item, value_item, data_item, _access, y_item, r_item, s_item = rest
    return SignedTransaction(
        raw=raw,
        hash=tx_hash,
        type=tx_type,
        chain_id=_int(items[0]),
        nonce=_int(items[1]),
        gas=_int(gas_item),
        gas_price=fees[0],
        max_fee_per_gas=fees[1],
        max_priority_fee_per_gas=fees[2],
        to=_address(to_item),
        value=_int(value_item),
        data=bytes(data_item),
        v=_int(y_item),
        r=_int(r_item),
        s=_int(s_item),
        sender=_recover(
            bytes([tx_type]) + rlp.encode(items[:-3]), _int(y_item), _int(r_item), _int(s_item)
        ),
    )


def intrinsic_gas(data: bytes) -> int:
    """Gas every call pays before execution: 21000 plus 4 / 16 per zero / other byte."""
    zeros = data.count(0)
    return 21_000 + 4 * zeros + 16 * (len(data) - zeros)
