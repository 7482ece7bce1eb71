"""ABI of the 0G Flow and market contracts, shared by the client and the devnet.

Pure encoding and decoding (eth-abi), no I/O. Sources: specs/0g-storage.md
section 5 and specs/0g-interop.md section 5.4.

- ``submit`` has two selectors: the current contract takes a ``Submission``
  (the data plus an explicit ``submitter``, ``0xbc8c11f8``); the older one
  (``0xef3e12dc``, SDK 0.3.x) takes the ``SubmissionData`` alone and uses the
  transaction sender as submitter.
- The ``Submit`` event is the same for both. Its data carries the tx seq
  (``submissionIndex``), the flow position (``startPos``, in sectors) and the
  length **in sectors**; topic 1 is the submitter and topic 2 the
  ``identity`` (keccak of the node roots concatenated, not the file root).
- A fee shortfall reverts with the custom error
  ``NotEnoughFee(uint256 price, uint256 amount, uint256 paid)``, where
  ``amount`` is the sector count and ``paid`` the Flow contract's balance.

Addresses come back from decoding as EIP-55 checksummed strings; compare them
case-insensitively.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from zerog_cli.zerog.abi import AbiError, checksum_address, keccak256
from zerog_cli.zerog.merkle import SubmissionNode

SUBMIT_SELECTOR = bytes.fromhex("bc8c11f8")
LEGACY_SUBMIT_SELECTOR = bytes.fromhex("ef3e12dc")
BATCH_SUBMIT_SELECTOR = bytes.fromhex("49aa3395")
MARKET_SELECTOR = bytes.fromhex("80f55605")
PRICE_PER_SECTOR_SELECTOR = bytes.fromhex("61ec5082")
SUBMIT_EVENT_TOPIC = bytes.fromhex(
    "167ce04d2aa1981994d3a31695da0d785373335b1078cec239a1a3a2c7675555"
)

SUBMISSION_DATA_ABI = "(uint256,bytes,(bytes32,uint256)[])"
SUBMISSION_ABI = f"({SUBMISSION_DATA_ABI},address)"
SUBMIT_RETURN_ABI = ("uint256", "bytes32", "uint256", "uint256")
SUBMIT_EVENT_DATA_ABI = ("uint256", "uint256", "uint256", SUBMISSION_DATA_ABI)

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

NOT_ENOUGH_FEE = AbiError(
    "NotEnoughFee",
    ["uint256", "uint256", "uint256"],
    lambda a: f"NotEnoughFee(price={a[0]}, sectors={a[1]}, paid={a[2]})",
)
"""``submit`` paid less than ``price`` x ``amount`` sectors; ``paid`` is the Flow balance."""
FLOW_ERRORS = (NOT_ENOUGH_FEE,)
"""The custom errors of the Flow and market contracts, for :func:`abi.decode_revert`."""


@dataclass(frozen=True)
class SubmissionData:
    """``SubmissionData``: file length in bytes, opaque tags, submission nodes."""

    length: int
    tags: bytes
    nodes: tuple[SubmissionNode, ...]

    @property
    def sectors(self) -> int:
        """Flow sectors (256-byte chunks) paid for: the sum of 2^height."""
        return sum(1 << node.height for node in self.nodes)

    def fee(self, price_per_sector: int) -> int:
        """The fee ``submit`` requires, in neuron."""
        return self.sectors * price_per_sector

    @property
    def identity(self) -> bytes:
        """The ``identity`` topic of the Submit event: keccak of the node roots."""
        return keccak256(b"".join(node.root for node in self.nodes))


@dataclass(frozen=True)
class Submission:
    """``Submission``: the data and the account credited as submitter."""

    data: SubmissionData
    submitter: str


class SubmitEvent(NamedTuple):
    """A decoded ``Submit`` log."""

    tx_seq: int
    start_pos: int
    sectors: int
    submission: Submission


class SupportsLog(Protocol):
    """A log object with raw topics and data (the devnet's ``Log``)."""

    @property
    def topics(self) -> Sequence[bytes]: ...

    @property
    def data(self) -> bytes: ...


def _abi_encode(types: Sequence[str], values: Sequence[Any]) -> bytes:
    from eth_abi import encode

    return encode(list(types), list(values))


def _abi_decode(types: Sequence[str], data: bytes) -> tuple[Any, ...]:
    from eth_abi import decode

    return tuple(decode(list(types), data))


def _data_tuple(data: SubmissionData) -> tuple[int, bytes, list[tuple[bytes, int]]]:
    return (data.length, data.tags, [(node.root, node.height) for node in data.nodes])


def _data_from_tuple(value: tuple[Any, ...]) -> SubmissionData:
    length, tags, nodes = value
    return SubmissionData(
        length=int(length),
        tags=bytes(tags),
        nodes=tuple(SubmissionNode(root=bytes(root), height=int(height)) for root, height in nodes),
    )


def encode_submit_calldata(submission: Submission) -> bytes:
    """Calldata of ``submit(Submission)`` (selector ``0xbc8c11f8``)."""
    encoded = _abi_encode([SUBMISSION_ABI], [(_data_tuple(submission.data), submission.submitter)])
    return SUBMIT_SELECTOR + encoded


def encode_legacy_submit_calldata(data: SubmissionData) -> bytes:
    """Calldata of the older ``submit(SubmissionData)`` (selector ``0xef3e12dc``)."""
    return LEGACY_SUBMIT_SELECTOR + _abi_encode([SUBMISSION_DATA_ABI], [_data_tuple(data)])


def is_submit_calldata(data: bytes) -> bool:
    """True when ``data`` starts with either ``submit`` selector."""
    return data[:4] in (SUBMIT_SELECTOR, LEGACY_SUBMIT_SELECTOR)


def decode_submit_calldata(data: bytes, *, sender: str | None = None) -> Submission:
    """Decode ``submit`` calldata of either form.

    The older form has no submitter field: the contract used ``msg.sender``,
    so ``sender`` must be given to decode it. Raises ``ValueError`` for
    other selectors or undecodable bytes.
    """
    selector, body = data[:4], data[4:]
    try:
        if selector == SUBMIT_SELECTOR:
            ((data_value, submitter),) = _abi_decode([SUBMISSION_ABI], body)
            return Submission(data=_data_from_tuple(data_value), submitter=str(submitter))
        if selector == LEGACY_SUBMIT_SELECTOR:
            if sender is None:
                raise ValueError("the legacy submit form needs the transaction sender")
            (data_value,) = _abi_decode([SUBMISSION_DATA_ABI], body)
            return Submission(data=_data_from_tuple(data_value), submitter=sender)
    except ValueError:
        raise
    except Exception as error:  # eth-abi raises several unrelated classes
        raise ValueError(f"undecodable submit calldata: {error}") from error
    raise ValueError(f"not a submit call: selector 0x{selector.hex()}")


def encode_batch_submit_calldata(submissions: Sequence[Submission]) -> bytes:
    """Calldata of ``batchSubmit(Submission[])`` (selector ``0x49aa3395``)."""
    values = [(_data_tuple(item.data), item.submitter) for item in submissions]
    return BATCH_SUBMIT_SELECTOR + _abi_encode([f"{SUBMISSION_ABI}[]"], [values])


def decode_batch_submit_calldata(data: bytes) -> list[Submission]:
    """Decode ``batchSubmit`` calldata; raises ``ValueError`` when it is not one."""
    if data[:4] != BATCH_SUBMIT_SELECTOR:
        raise ValueError(f"not a batchSubmit call: selector 0x{data[:4].hex()}")
    try:
        (values,) = _abi_decode([f"{SUBMISSION_ABI}[]"], data[4:])
    except Exception as error:  # eth-abi raises several unrelated classes
        raise ValueError(f"undecodable batchSubmit calldata: {error}") from error
    return [Submission(_data_from_tuple(item), str(submitter)) for item, submitter in values]


def encode_batch_submit_return(results: Sequence[tuple[int, bytes, int, int]]) -> bytes:
    """Return data of ``batchSubmit``: the four arrays of ``submit``'s results."""
    columns = [list(column) for column in zip(*results, strict=True)] or [[], [], [], []]
    return _abi_encode([f"{kind}[]" for kind in SUBMIT_RETURN_ABI], columns)


def encode_submit_return(index: int, digest: bytes, start_index: int, sectors: int) -> bytes:
    """Return data of ``submit``: ``(index, digest, startIndex, length)``."""
    return _abi_encode(SUBMIT_RETURN_ABI, [index, digest, start_index, sectors])


def _address_topic(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address.removeprefix("0x").removeprefix("0X"))


def encode_submit_log(
    tx_seq: int, start_pos: int, submission: Submission
) -> tuple[list[bytes], bytes]:
    """Topics and data of the ``Submit`` event for ``submission`` at ``start_pos``."""
    topics = [
        SUBMIT_EVENT_TOPIC,
        _address_topic(submission.submitter),
        submission.data.identity,
    ]
    data = _abi_encode(
        SUBMIT_EVENT_DATA_ABI,
        [tx_seq, start_pos, submission.data.sectors, _data_tuple(submission.data)],
    )
    return topics, data


def _hex_bytes(value: str | bytes) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return bytes.fromhex(value.removeprefix("0x").removeprefix("0X"))


def _log_parts(log: Mapping[str, Any] | SupportsLog) -> tuple[list[bytes], bytes]:
    if isinstance(log, Mapping):
        return [_hex_bytes(t) for t in log.get("topics", [])], _hex_bytes(log.get("data", b""))
    return [bytes(t) for t in log.topics], bytes(log.data)


def decode_submit_log(log: Mapping[str, Any] | SupportsLog) -> SubmitEvent:
    """Decode a ``Submit`` log: a JSON receipt log (hex strings) or a raw log.

    Raises ``ValueError`` when the log is not a well-formed Submit event.
    """
    topics, data = _log_parts(log)
    if len(topics) != 3 or topics[0] != SUBMIT_EVENT_TOPIC:
        raise ValueError("not a Submit event")
    if len(topics[1]) != 32 or any(topics[1][:12]):
        raise ValueError("Submit event with a malformed sender topic")
    try:
        tx_seq, start_pos, sectors, data_value = _abi_decode(SUBMIT_EVENT_DATA_ABI, data)
    except Exception as error:  # eth-abi raises several unrelated classes
        raise ValueError(f"undecodable Submit event data: {error}") from error
    submitter = checksum_address(topics[1][12:])
    submission = Submission(data=_data_from_tuple(data_value), submitter=submitter)
    return SubmitEvent(int(tx_seq), int(start_pos), int(sectors), submission)


def find_submit_events(
    logs: Iterable[Mapping[str, Any] | SupportsLog], flow_address: str
) -> list[SubmitEvent]:
    """The Submit events emitted by ``flow_address`` among ``logs``, in order.

    Logs from other addresses, with other topics, or that do not decode are
    skipped, as the official clients do.
    """
    wanted = flow_address.lower()
    events = []
    for log in logs:
        if isinstance(log, Mapping):
            address = str(log.get("address", ""))
        else:
            address = str(getattr(log, "address", ""))
        if address.lower() != wanted:
            continue
        try:
            events.append(decode_submit_log(log))
        except ValueError:
            continue
    return events


def encode_address_word(address: str) -> bytes:
    """One ABI word holding ``address`` (the return data of ``market()``)."""
    return _abi_encode(["address"], [address])


def decode_address_word(data: bytes) -> str:
    """Decode the return data of ``market()``. Raises ``ValueError`` if malformed."""
    if len(data) != 32 or any(data[:12]):
        raise ValueError(f"not an ABI-encoded address: 0x{data.hex()}")
    return checksum_address(data[12:])


def encode_uint_word(value: int) -> bytes:
    """One ABI word holding ``value`` (the return data of ``pricePerSector()``)."""
    return value.to_bytes(32, "big")


def decode_uint_word(data: bytes) -> int:
    """Decode the return data of ``pricePerSector()``. Raises ``ValueError`` if malformed."""
    if len(data) != 32:
        raise ValueError(f"not an ABI-encoded uint256: 0x{data.hex()}")
    return int.from_bytes(data, "big")
