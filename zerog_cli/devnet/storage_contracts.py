"""The storage contracts: Flow (``FixedPriceFlow``) and its FixedPrice market.

Behaviour follows specs/0g-storage.md 5.3-5.5 and specs/0g-interop.md 6.2:

- ``submit`` in both forms (current ``0xbc8c11f8`` with an explicit
  submitter, older ``0xef3e12dc`` where the submitter is ``msg.sender``), and
  ``batchSubmit`` (``0x49aa3395``): each submission in turn, each paying its
  fee out of the Flow balance, all or nothing;
- ``Submission.valid()``: non-zero submitter, nodes present, heights strictly
  decreasing, first - last < 4, first < 64, length within capacity and no more
  than the minimum padding; failure reverts with ``Error("Invalid submission")``,
  except a first height below the last, where the official ``first - last``
  underflows first: ``Panic(0x11)``;
- the fee: ``sectors x pricePerSector`` must be covered by the Flow
  contract's **balance** (this call's value plus anything left over from
  earlier overpayments, as in ``FixedPriceFlow``), else
  ``NotEnoughFee(price, sectors, paid = balance)``; exactly the fee moves to
  the market and any excess stays in Flow;
- placement in the flow per the contract's rule, so no file crosses a
  segment boundary unless it starts on one.
"""

from __future__ import annotations

import itertools
from typing import Any

from zerog_cli.devnet.contracts import ChainContext, Contract, Log, Revert
from zerog_cli.zerog.abi import ERROR_STRING, PANIC
from zerog_cli.zerog.flow_abi import (
    BATCH_SUBMIT_SELECTOR,
    MARKET_SELECTOR,
    NOT_ENOUGH_FEE,
    PRICE_PER_SECTOR_SELECTOR,
    Submission,
    SubmissionData,
    decode_batch_submit_calldata,
    decode_submit_calldata,
    encode_address_word,
    encode_batch_submit_return,
    encode_submit_log,
    encode_submit_return,
    encode_uint_word,
    is_submit_calldata,
)
from zerog_cli.zerog.merkle import SEGMENT_CHUNKS, SubmissionNode

PANIC_ARITHMETIC = 0x11
"""Solidity's panic code for an arithmetic overflow or underflow."""


def submission_is_valid(data: SubmissionData, submitter: str) -> bool:
    """``Submission.valid()`` of the Flow contract (raises `Revert` where it panics)."""
    if int(submitter, 16) == 0 or not data.nodes:
        return False
    heights = [node.height for node in data.nodes]
    if heights[0] < heights[-1]:
        raise Revert(PANIC.encode(PANIC_ARITHMETIC), "panic: arithmetic underflow")
    if heights[0] >= 64 or heights[0] - heights[-1] >= 4:
        return False
    if any(later >= earlier for earlier, later in itertools.pairwise(heights)):
        return False
    capacity = sum(1 << height for height in heights)
    if data.length > capacity * 256:
        return False
    if capacity < 16:
        last = capacity - 1
    elif len(heights) == 1:
        last = capacity - capacity // 16
    else:
        last = capacity - (1 << (heights[0] - 3))
    return data.length > last * 256


def _align_up(value: int, height: int) -> int:
    size = 1 << height
    return (value + size - 1) // size * size


def place_submission(flow_length: int, nodes: tuple[SubmissionNode, ...]) -> tuple[int, int]:
    """Where a submission lands: ``(startPos, new flow length)`` (interop 6.2)."""
    size = sum(1 << node.height for node in nodes)
    start = _align_up(flow_length, nodes[0].height)
    if start % SEGMENT_CHUNKS and start // SEGMENT_CHUNKS != (start + size - 1) // SEGMENT_CHUNKS:
        flow_length = start - start % SEGMENT_CHUNKS + SEGMENT_CHUNKS
    first = None
    for node in nodes:
        position = _align_up(flow_length, node.height)
        if first is None:
            first = position
        flow_length = position + (1 << node.height)
    assert first is not None
    return first, flow_length


class MarketContract(Contract):
    """``FixedPrice`` market: ``pricePerSector()``; receives the fees."""

    name = "FixedPrice"
    execution_gas = 5_000

    def __init__(self, address: str, price_per_sector: int) -> None:
        super().__init__(address)
        self.price_per_sector = price_per_sector

    def call(self, chain: ChainContext, sender: str, data: bytes, value: int) -> bytes:
        if data[:4] == PRICE_PER_SECTOR_SELECTOR and value == 0:
            return encode_uint_word(self.price_per_sector)
        raise Revert(b"", "execution reverted")

    def transact(self, chain: ChainContext, sender: str, data: bytes, value: int) -> list[Log]:
        if not data:
            return []  # plain transfers (the fee forwarded by Flow) are accepted
        return super().transact(chain, sender, data, value)


class FlowContract(Contract):
    """``FixedPriceFlow``: ``submit`` (both forms), ``batchSubmit`` and ``market()``."""

    name = "FixedPriceFlow"
    execution_gas = 150_000

    def __init__(self, address: str, market: MarketContract) -> None:
        super().__init__(address)
        self.market = market
        self.flow_length = 1  # flow sector 0 is reserved
        self.submissions = 0

    def call(self, chain: ChainContext, sender: str, data: bytes, value: int) -> bytes:
        """Views, plus ``submit`` and ``batchSubmit`` simulated (effects discarded)."""
        if data[:4] == MARKET_SELECTOR and value == 0:
            return encode_address_word(self.market.address)
        if is_submit_calldata(data) or data[:4] == BATCH_SUBMIT_SELECTOR:
            return self._submit_call(chain, sender, data)[0]
        raise Revert(b"", "execution reverted")

    def transact(self, chain: ChainContext, sender: str, data: bytes, value: int) -> list[Log]:
        if is_submit_calldata(data) or data[:4] == BATCH_SUBMIT_SELECTOR:
            return self._submit_call(chain, sender, data)[1]
        return super().transact(chain, sender, data, value)

    def _submit_call(
        self, chain: ChainContext, sender: str, data: bytes
    ) -> tuple[bytes, list[Log]]:
        """Return data and logs of a ``submit`` or ``batchSubmit`` call."""
        try:
            if data[:4] == BATCH_SUBMIT_SELECTOR:
                submissions = decode_batch_submit_calldata(data)
            else:
                submissions = [decode_submit_calldata(data, sender=sender)]
        except ValueError as error:
            raise Revert(b"", f"execution reverted: {error}") from error
        results = []
        logs = []
        for submission in submissions:
            result, log = self._submit(chain, submission)
            results.append(result)
            logs.append(log)
        if data[:4] == BATCH_SUBMIT_SELECTOR:
            return encode_batch_submit_return(results), logs
        return encode_submit_return(*results[0]), logs

    def _submit(
        self, chain: ChainContext, submission: Submission
    ) -> tuple[tuple[int, bytes, int, int], Log]:
        """One submission: ``(index, digest, startIndex, length)`` and its Submit log."""
        if not submission_is_valid(submission.data, submission.submitter):
            raise Revert(ERROR_STRING.encode("Invalid submission"), "Invalid submission")
        sectors = submission.data.sectors
        price = self.market.price_per_sector
        fee = sectors * price
        paid = chain.balance(self.address)
        if fee > paid:
            raise Revert(
                NOT_ENOUGH_FEE.encode(price, sectors, paid),
                f"NotEnoughFee(price={price}, sectors={sectors}, paid={paid})",
            )
        chain.transfer(self.address, self.market.address, fee)
        start, self.flow_length = place_submission(self.flow_length, submission.data.nodes)
        index = self.submissions
        self.submissions += 1
        emitted = Submission(data=submission.data, submitter=submission.submitter)
        topics, log_data = encode_submit_log(index, start, emitted)
        # The official return value is ``Submission.digest()``: keccak of the
        # node roots, the same value as the event's identity topic.
        result = (index, submission.data.identity, start, sectors)
        return result, Log(address=self.address, topics=topics, data=log_data)

    def export_state(self) -> Any:
        return {"flowLength": self.flow_length, "submissions": self.submissions}

    def import_state(self, state: Any) -> None:
        self.flow_length = int(state["flowLength"])
        self.submissions = int(state["submissions"])


def storage_contracts(
    flow_address: str, market_address: str, price_per_sector: int
) -> tuple[FlowContract, MarketContract]:
    """The Flow contract and its market, ready to register with a chain."""
    market = MarketContract(market_address, price_per_sector)
    return FlowContract(flow_address, market), market
