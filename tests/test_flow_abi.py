"""Flow/market ABI: the spec's worked calldata byte for byte, and round trips."""

from __future__ import annotations

import pytest
import sha3

from tests.conformance import load_vectors
from zerog_cli.zerog import flow_abi, merkle
from zerog_cli.zerog.abi import ERROR_STRING, decode_revert

SUBMITTER = "0x1111111111111111111111111111111111111111"

# specs/0g-storage.md 5.1: calldata of submit() for vector mod251-4097, tags empty.
WORKED_EXAMPLE_WORDS = [
    "0000000000000000000000000000000000000000000000000000000000000020",
    "0000000000000000000000000000000000000000000000000000000000000040",
    "0000000000000000000000001111111111111111111111111111111111111111",
    "0000000000000000000000000000000000000000000000000000000000001001",
    "0000000000000000000000000000000000000000000000000000000000000060",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000002",
    "aef6d19a4161f0fabc7a71f56477d1c829d6ba7967d6a987750ff67fbfb430a5",
    "0000000000000000000000000000000000000000000000000000000000000004",
    "7129aa3afd565eb4eaa17b8aa1e717f1d0f38934d2cf834ead85892f94f6c1b1",
    "0000000000000000000000000000000000000000000000000000000000000001",
]


def _keccak(text: str) -> bytes:
    return sha3.keccak_256(text.encode()).digest()


def _mod251(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


def _submission(data: bytes, tags: bytes = b"") -> flow_abi.Submission:
    tree = merkle.tree_from_bytes(data)
    return flow_abi.Submission(
        flow_abi.SubmissionData(len(data), tags, tree.submission_nodes), SUBMITTER
    )


def test_worked_example_calldata_byte_for_byte() -> None:
    calldata = flow_abi.encode_submit_calldata(_submission(_mod251(4097)))
    assert calldata == bytes.fromhex("bc8c11f8" + "".join(WORKED_EXAMPLE_WORDS))


@pytest.mark.parametrize(
    ("constant", "signature"),
    [
        (flow_abi.SUBMIT_SELECTOR, "submit(((uint256,bytes,(bytes32,uint256)[]),address))"),
        (flow_abi.LEGACY_SUBMIT_SELECTOR, "submit((uint256,bytes,(bytes32,uint256)[]))"),
        (flow_abi.MARKET_SELECTOR, "market()"),
        (flow_abi.PRICE_PER_SECTOR_SELECTOR, "pricePerSector()"),
        (flow_abi.NOT_ENOUGH_FEE.selector, "NotEnoughFee(uint256,uint256,uint256)"),
        (ERROR_STRING.selector, "Error(string)"),
    ],
)
def test_selectors_are_keccak_of_signatures(constant: bytes, signature: str) -> None:
    assert constant == _keccak(signature)[:4]


def test_submit_event_topic() -> None:
    signature = (
        "Submit(address,bytes32,uint256,uint256,uint256,(uint256,bytes,(bytes32,uint256)[]))"
    )
    assert _keccak(signature) == flow_abi.SUBMIT_EVENT_TOPIC


def test_decode_round_trip_every_conformance_vector() -> None:
    for vector in load_vectors("storage-roots.json"):
        nodes = tuple(
            merkle.SubmissionNode(bytes.fromhex(n["root"][2:]), n["height"])
            for n in vector["submission_nodes"]
        )
        data = flow_abi.SubmissionData(vector["size"], b"", nodes)
        assert data.sectors == vector["fee_sectors"]
        submission = flow_abi.Submission(data, SUBMITTER)
        decoded = flow_abi.decode_submit_calldata(flow_abi.encode_submit_calldata(submission))
        assert decoded == submission
        assert merkle.fold_submission_root(nodes).hex() == vector["root"][2:]


def test_tags_round_trip_and_change_the_nodes_offset() -> None:
    submission = _submission(_mod251(300), tags=b"\x01" * 33)
    calldata = flow_abi.encode_submit_calldata(submission)
    words = [calldata[4 + i : 36 + i] for i in range(0, len(calldata) - 4, 32)]
    assert int.from_bytes(words[5], "big") == 0x80 + 64  # nodes after 33 tag bytes
    assert flow_abi.decode_submit_calldata(calldata) == submission


def test_legacy_form_needs_the_sender() -> None:
    submission = _submission(_mod251(1000))
    calldata = flow_abi.encode_legacy_submit_calldata(submission.data)
    assert calldata[:4] == flow_abi.LEGACY_SUBMIT_SELECTOR
    sender = "0x2222222222222222222222222222222222222222"
    decoded = flow_abi.decode_submit_calldata(calldata, sender=sender)
    assert decoded == flow_abi.Submission(submission.data, sender)
    with pytest.raises(ValueError, match="sender"):
        flow_abi.decode_submit_calldata(calldata)


@pytest.mark.parametrize(
    "calldata",
    [b"", b"\x12\x34\x56\x78", flow_abi.SUBMIT_SELECTOR + b"\x00" * 31, flow_abi.SUBMIT_SELECTOR],
)
def test_undecodable_calldata_is_a_value_error(calldata: bytes) -> None:
    with pytest.raises(ValueError):
        flow_abi.decode_submit_calldata(calldata, sender=SUBMITTER)


def test_submit_event_round_trip_and_layout() -> None:
    submission = _submission(_mod251(786449))  # three nodes: heights 11, 10, 8
    topics, data = flow_abi.encode_submit_log(7, 4096, submission)
    assert topics[0] == flow_abi.SUBMIT_EVENT_TOPIC
    assert topics[1] == bytes(12) + bytes.fromhex(SUBMITTER[2:])
    roots = b"".join(node.root for node in submission.data.nodes)
    assert topics[2] == _keccak_bytes(roots)
    words = [data[i : i + 32] for i in range(0, len(data), 32)]
    assert int.from_bytes(words[0], "big") == 7
    assert int.from_bytes(words[1], "big") == 4096
    assert int.from_bytes(words[2], "big") == submission.data.sectors == 2048 + 1024 + 256
    assert int.from_bytes(words[3], "big") == 0x80
    assert int.from_bytes(words[4], "big") == 786449
    json_log = {"topics": ["0x" + t.hex() for t in topics], "data": "0x" + data.hex()}
    event = flow_abi.decode_submit_log(json_log)
    assert event == (7, 4096, submission.data.sectors, submission)
    assert event.tx_seq == 7


def _keccak_bytes(data: bytes) -> bytes:
    return sha3.keccak_256(data).digest()


def test_find_submit_events_skips_foreign_and_broken_logs() -> None:
    flow = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    submission = _submission(_mod251(5000))
    topics, data = flow_abi.encode_submit_log(3, 64, submission)
    good = {"address": flow.lower(), "topics": ["0x" + t.hex() for t in topics]}
    good["data"] = "0x" + data.hex()
    foreign = {**good, "address": "0x" + "ab" * 20}
    broken = {**good, "data": "0x1234"}
    other_topic = {**good, "topics": ["0x" + "00" * 32, *good["topics"][1:]]}
    events = flow_abi.find_submit_events([foreign, broken, other_topic, good], flow)
    assert [event.tx_seq for event in events] == [3]
    with pytest.raises(ValueError):
        flow_abi.decode_submit_log(broken)


def test_not_enough_fee_and_revert_descriptions() -> None:
    data = flow_abi.NOT_ENOUGH_FEE.encode(10, 18, 5)
    assert data[:4] == bytes.fromhex("f85c6482")
    fee = decode_revert(data, flow_abi.FLOW_ERRORS)
    assert (fee.name, fee.args) == ("NotEnoughFee", (10, 18, 5))
    assert fee.message == "NotEnoughFee(price=10, sectors=18, paid=5)"
    assert decode_revert(b"\x00" * 100, flow_abi.FLOW_ERRORS).name is None
    reason = ERROR_STRING.encode("Invalid submission")
    assert decode_revert(reason, flow_abi.FLOW_ERRORS).message == "Invalid submission"
    assert "no reason given" in decode_revert(b"", flow_abi.FLOW_ERRORS).message


def test_address_and_uint_words() -> None:
    word = flow_abi.encode_address_word("0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512")
    assert word == bytes(12) + bytes.fromhex("e7f1725e7734ce288f8367e1bb143e90bb3f0512")
    assert flow_abi.decode_address_word(word) == "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
    with pytest.raises(ValueError):
        flow_abi.decode_address_word(b"\x01" * 32)
    assert flow_abi.decode_uint_word(flow_abi.encode_uint_word(12345)) == 12345
    with pytest.raises(ValueError):
        flow_abi.decode_uint_word(b"")
