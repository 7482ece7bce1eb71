"""The devnet's compute side over the wire: contracts by JSON-RPC, the provider by HTTP.

Everything here goes through the protocol layer (`zerog_cli.zerog.compute`) the
way a client would, against one devnet process started for this module. Tests
that change on-chain state use their own fresh wallets, so they do not depend
on each other's order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.devnet_harness import (
    NO_PROXY,
    DevnetProcess,
    rpc,
    rpc_raw,
    send_transaction,
    start_devnet,
)
from zerog_cli.devnet.compute import (
    DEVNET_MODEL,
    PROVIDER_ADDRESS,
    SERVICE_NAME,
    TEE_SIGNER_ADDRESS,
    UNFUNDED_ACCOUNT_ADDRESS,
    UNFUNDED_ACCOUNT_KEY,
)
from zerog_cli.devnet.constants import DEV_ACCOUNT_ADDRESS, DEV_ACCOUNT_KEY
from zerog_cli.devnet.provider import count_tokens
from zerog_cli.errors import IntegrityError, NotFound, QuotaExceeded, RemoteError, UsageError
from zerog_cli.zerog import compute
from zerog_cli.zerog.abi import decode_revert
from zerog_cli.zerog.compute import ComputeContracts, Pricing

pytestmark = pytest.mark.devnet(nodes=1)

ZG = 10**18
NETWORK = compute.NETWORKS[31337]


def eth_call_over(rpc_url: str, sender: str | None = None, value: int = 0) -> compute.EthCall:
    """An ``eth_call`` function for `ComputeContracts`, raising RemoteError like a client."""

    def call(to: str, data: bytes) -> bytes:
        request: dict[str, Any] = {"to": to, "data": "0x" + data.hex(), "value": hex(value)}
        if sender:
            request["from"] = sender
        answer = rpc_raw(rpc_url, "eth_call", [request, "latest"])
        if "error" in answer:
            error = answer["error"]
            raise RemoteError(error["message"], code=error["code"], data=error.get("data"))
        return bytes.fromhex(answer["result"][2:])

    return call


def contracts(net: DevnetProcess) -> ComputeContracts:
    return ComputeContracts(
        eth_call_over(net.rpc_url), ledger=NETWORK.ledger, inference=NETWORK.inference
    )


def wallet(name: str) -> tuple[str, str]:
    """A fresh deterministic test wallet (key, address)."""
    key = "0x" + compute.keccak256(f"zerog devnet compute test {name}".encode()).hex()
    return key, compute.address_of(key)


def transact(net: DevnetProcess, key: str, to: str, data: bytes, value: int = 0) -> bool:
    """Send a signed transaction; True when it succeeded."""
    receipt = send_transaction(net.rpc_url, to=to, data=data, value=value, key=key)
    return bool(receipt["status"] == "0x1")


def funded_wallet(net: DevnetProcess, name: str, native: int = 50 * ZG) -> tuple[str, str]:
    key, address = wallet(name)
    assert transact(net, DEV_ACCOUNT_KEY, address, b"", native)
    return key, address


def revert_of(net: DevnetProcess, sender: str, to: str, data: bytes, value: int = 0) -> str:
    """Simulate a call and return the decoded revert sentence."""
    with pytest.raises(RemoteError) as caught:
        eth_call_over(net.rpc_url, sender, value)(to, data)
    revert = compute.revert_data_from(caught.value)
    assert revert is not None
    decoded = decode_revert(revert, compute.COMPUTE_ERRORS)
    return f"{decoded.name}: {decoded.message}"


def chat(
    net: DevnetProcess,
    key: str,
    prompt: str = "Hello there, devnet!",
    *,
    token: compute.SignedToken | None = None,
    max_tokens: int = 50,
    stream: bool = False,
) -> tuple[bytes, requests.Response]:
    token = token or compute.new_session_token(
        key, PROVIDER_ADDRESS, generation=generation(net, key)
    )
    body = compute.chat_request_body(
        DEVNET_MODEL, [{"role": "user", "content": prompt}], max_tokens=max_tokens, stream=stream
    )
    response = requests.post(
        compute.chat_completions_url(net.provider_url),
        data=body,
        headers={**token.headers(), "Content-Type": "application/json"},
        proxies=NO_PROXY,
        timeout=30,
    )
    return body, response


def generation(net: DevnetProcess, key: str) -> int:
    account = contracts(net).get_account(compute.address_of(key), PROVIDER_ADDRESS)
    return account.generation if account else 0


def provider_get(net: DevnetProcess, path: str, **kwargs: Any) -> requests.Response:
    return requests.get(net.provider_url + path, proxies=NO_PROXY, timeout=30, **kwargs)


def provider_settings(net: DevnetProcess, **changes: Any) -> dict[str, Any]:
    answer = requests.post(
        net.provider_url + "/devnet/settings", json=changes, proxies=NO_PROXY, timeout=30
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def service(net: DevnetProcess) -> compute.Service:
    return contracts(net).get_service(PROVIDER_ADDRESS)


# --- genesis state ------------------------------------------------------------------------------


def test_seeded_chain_state(net: DevnetProcess) -> None:
    reader = contracts(net)
    seeded = reader.get_service(PROVIDER_ADDRESS)
    assert seeded.url == net.provider_url
    assert (seeded.model, seeded.service_type, seeded.verifiability) == (
        DEVNET_MODEL,
        "chatbot",
        "TeeML",
    )
    assert (seeded.input_price, seeded.output_price) == (50_000_000_000, 100_000_000_000)
    assert seeded.tee_signer_address == TEE_SIGNER_ADDRESS and seeded.tee_signer_acknowledged
    assert compute.expected_response_signer(seeded) == TEE_SIGNER_ADDRESS
    assert PROVIDER_ADDRESS in [s.provider for s in reader.list_services()]

    assert reader.inference_service_name() == SERVICE_NAME
    assert reader.lock_time() == 24 * 3600
    ledger = reader.get_ledger(DEV_ACCOUNT_ADDRESS)
    assert ledger is not None
    assert (ledger.total_balance, ledger.available_balance) == (100 * ZG, 90 * ZG)
    account = reader.get_account(DEV_ACCOUNT_ADDRESS, PROVIDER_ADDRESS)
    assert account is not None and account.acknowledged and account.balance == 10 * ZG
    assert reader.get_ledger_providers(DEV_ACCOUNT_ADDRESS, SERVICE_NAME) == [PROVIDER_ADDRESS]

    assert compute.address_of(UNFUNDED_ACCOUNT_KEY) == UNFUNDED_ACCOUNT_ADDRESS
    assert reader.get_ledger(UNFUNDED_ACCOUNT_ADDRESS) is None
    assert reader.get_account(UNFUNDED_ACCOUNT_ADDRESS, PROVIDER_ADDRESS) is None
    assert int(rpc(net.rpc_url, "eth_getBalance", [NETWORK.ledger, "latest"]), 16) >= 90 * ZG
    assert int(rpc(net.rpc_url, "eth_getBalance", [NETWORK.inference, "latest"]), 16) >= 10 * ZG


def test_paging_past_fifty_services(net: DevnetProcess) -> None:
    answer = requests.post(
        net.provider_url + "/devnet/services", json={"count": 60}, proxies=NO_PROXY, timeout=30
    )
    assert answer.status_code == 200, answer.text
    reader = contracts(net)
    page = reader.get_all_services(0, 50)
    assert len(page.services) == 50 and page.total >= 61
    services = reader.list_services()
    assert len(services) == page.total
    assert len({s.provider for s in services}) == len(services)
    with pytest.raises(UsageError):
        reader.get_all_services(0, 51)


def test_synthetic_services_are_owner_only(net: DevnetProcess) -> None:
    from zerog_cli.devnet.compute import DEVNET_REGISTER_SERVICES

    _, stranger = wallet("stranger")
    message = revert_of(net, stranger, NETWORK.inference, DEVNET_REGISTER_SERVICES.encode(1))
    assert "only the devnet owner" in message


# --- chat over HTTP -----------------------------------------------------------------------------


def test_chat_answer_usage_fee_and_signature(net: DevnetProcess) -> None:
    before = int(_unsettled(net, DEV_ACCOUNT_KEY))
    body, response = chat(net, DEV_ACCOUNT_KEY, "Hello there, devnet!")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert compute.chat_answer(answer) == "You said: Hello there, devnet!"
    usage = answer["usage"]
    assert usage["prompt_tokens"] == count_tokens("Hello there, devnet!") == 5
    assert usage["completion_tokens"] == count_tokens("You said: Hello there, devnet!") == 8
    chat_id = compute.chat_id_from(response.headers, answer)
    assert chat_id == response.headers["ZG-Res-Key"] == answer["id"]

    fee = compute.chat_fee(usage, Pricing.from_service(service(net))).fee
    assert fee == 5 * 50_000_000_000 + 8 * 100_000_000_000
    assert int(_unsettled(net, DEV_ACCOUNT_KEY)) == before + fee

    signature = provider_get(net, f"/v1/proxy/signature/{chat_id}", params={"model": DEVNET_MODEL})
    assert signature.status_code == 200
    check = compute.check_response_signature(
        service(net), signature.json(), request_body=body, response_body=response.content
    )
    assert check.verified, check.reason
    missing = provider_get(net, "/v1/proxy/signature/nope")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Chat id not found or expired, chat_id_not_found"}


def test_max_tokens_truncates(net: DevnetProcess) -> None:
    _, response = chat(net, DEV_ACCOUNT_KEY, "a long prompt", max_tokens=2)
    answer = response.json()
    assert compute.chat_answer(answer) == "You said"
    assert answer["choices"][0]["finish_reason"] == "length"
    assert answer["usage"]["completion_tokens"] == 2


def test_streaming_chat(net: DevnetProcess) -> None:
    body, response = chat(net, DEV_ACCOUNT_KEY, "stream me please", stream=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    stream = compute.ChatStream()
    deltas: list[str] = []
    raw = b""
    for piece in response.iter_content(None):
        raw += piece
        deltas += stream.feed(piece)
    deltas += stream.close()
    assert stream.done and stream.text == "You said: stream me please"
    assert deltas == ["You ", "said: ", "stream ", "me ", "please"]
    assert stream.usage == {"prompt_tokens": 4, "completion_tokens": 7, "total_tokens": 11}
    assert stream.chat_id == response.headers["ZG-Res-Key"]
    signature = provider_get(net, f"/v1/proxy/signature/{stream.chat_id}").json()
    check = compute.check_response_signature(
        service(net), signature, request_body=body, response_body=raw
    )
    assert check.verified, check.reason


def test_models_and_unsettled_fee_endpoints(net: DevnetProcess) -> None:
    models = compute.parse_models(provider_get(net, "/v1/models").json())
    assert [m["id"] for m in models] == [DEVNET_MODEL]
    assert models[0]["pricing"] == {"prompt": "50000000000", "completion": "100000000000"}
    unauthenticated = provider_get(net, f"/v1/user/{DEV_ACCOUNT_ADDRESS}/unsettledfee")
    assert unauthenticated.status_code == 400
    assert "missing or invalid Authorization header" in unauthenticated.json()["error"]


def _unsettled(net: DevnetProcess, key: str) -> str:
    token = compute.new_session_token(key, PROVIDER_ADDRESS, generation=generation(net, key))
    address = compute.address_of(key)
    answer = requests.get(
        compute.unsettled_fee_url(net.provider_url, address),
        headers=token.headers(),
        proxies=NO_PROXY,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return str(compute.parse_unsettled_fee(answer.json()))


# --- token checks over HTTP ---------------------------------------------------------------------


def _expect_refusal(response: requests.Response, message: str, kind: str) -> None:
    assert response.status_code == 400, response.text
    text = compute.provider_error_message(response.content)
    assert message in text, text
    assert compute.classify_provider_error(response.status_code, response.content).kind == kind


def _signed_by_someone_else() -> compute.SignedToken:
    """The dev account's RAW carrying another wallet's signature."""
    genuine = compute.new_session_token(DEV_ACCOUNT_KEY, PROVIDER_ADDRESS)
    forged = compute.new_session_token(UNFUNDED_ACCOUNT_KEY, PROVIDER_ADDRESS)
    return compute.SignedToken(genuine.token, genuine.raw, forged.signature)


@pytest.mark.parametrize(
    ("make_token", "message"),
    [
        (
            lambda: compute.new_session_token(DEV_ACCOUNT_KEY, TEE_SIGNER_ADDRESS),
            "session token is for different provider",
        ),
        (
            lambda: compute.new_session_token(
                DEV_ACCOUNT_KEY, PROVIDER_ADDRESS, duration_ms=1000, now_ms=1_700_000_000_000
            ),
            "session token expired",
        ),
        (
            lambda: compute.new_session_token(DEV_ACCOUNT_KEY, PROVIDER_ADDRESS, generation=7),
            "invalid session token (future generation)",
        ),
        (_signed_by_someone_else, "signature verification failed: address mismatch"),
    ],
    ids=["wrong-provider", "expired", "future-generation", "bad-signature"],
)
def test_provider_rejects_bad_tokens(
    net: DevnetProcess, make_token: Callable[[], compute.SignedToken], message: str
) -> None:
    _, response = chat(net, DEV_ACCOUNT_KEY, token=make_token())
    _expect_refusal(response, message, "auth")


def test_provider_rejects_missing_and_malformed_headers(net: DevnetProcess) -> None:
    url = compute.chat_completions_url(net.provider_url)
    for headers in (
        {},
        {"Authorization": "Bearer sk-plain"},
        {"Authorization": "Bearer app-sk-%%"},
    ):
        response = requests.post(url, data=b"{}", headers=headers, proxies=NO_PROXY, timeout=30)
        _expect_refusal(response, "Authorization", "auth")


def test_unfunded_account_is_refused(net: DevnetProcess) -> None:
    _, response = chat(net, UNFUNDED_ACCOUNT_KEY)
    _expect_refusal(response, "account not exist", "funding")
    failure = compute.classify_provider_error(response.status_code, response.content)
    assert isinstance(failure.to_error(net.provider_url), QuotaExceeded)


def test_unknown_model_and_bad_body(net: DevnetProcess) -> None:
    token = compute.new_session_token(DEV_ACCOUNT_KEY, PROVIDER_ADDRESS)
    url = compute.chat_completions_url(net.provider_url)
    body = json.dumps({"model": "gpt-9", "messages": []}).encode()
    response = requests.post(url, data=body, headers=token.headers(), proxies=NO_PROXY, timeout=30)
    _expect_refusal(response, "unknown model", "usage")
    response = requests.post(url, data=b"[", headers=token.headers(), proxies=NO_PROXY, timeout=30)
    assert response.status_code == 400


# --- funding, billing gate, revocation ---------------------------------------------------------


def test_deposit_transfer_gate_and_revocation(net: DevnetProcess) -> None:
    key, user = funded_wallet(net, "funding")
    reader = contracts(net)
    wallet_before = int(rpc(net.rpc_url, "eth_getBalance", [user, "latest"]), 16)

    too_small = revert_of(net, user, NETWORK.ledger, compute.encode_deposit_fund(), 2 * ZG)
    assert too_small.startswith("MinimumDepositRequired") and "at least 3.0 0G" in too_small
    assert transact(net, key, NETWORK.ledger, compute.encode_deposit_fund(), 3 * ZG)
    wallet_after = int(rpc(net.rpc_url, "eth_getBalance", [user, "latest"]), 16)
    assert wallet_before - wallet_after > 3 * ZG  # the deposit plus gas
    ledger = reader.get_ledger(user)
    assert ledger is not None and (ledger.total_balance, ledger.available_balance) == (
        3 * ZG,
        3 * ZG,
    )

    transfer = compute.encode_transfer_fund(PROVIDER_ADDRESS, SERVICE_NAME, ZG)
    assert transact(net, key, NETWORK.ledger, transfer)
    account = reader.get_account(user, PROVIDER_ADDRESS)
    assert account is not None and account.acknowledged and account.balance == ZG
    ledger = reader.get_ledger(user)
    assert ledger is not None and (ledger.available_balance, ledger.locked) == (2 * ZG, ZG)
    too_much = compute.encode_transfer_fund(PROVIDER_ADDRESS, SERVICE_NAME, 5 * ZG)
    assert revert_of(net, user, NETWORK.ledger, too_much).startswith("InsufficientAvailableBalance")

    # 1 0G locked is only the provider's reserve: nothing left for the request.
    _, response = chat(net, key)
    _expect_refusal(response, "insufficient balance: your locked balance is 1.000000 0G", "funding")
    with pytest.raises(QuotaExceeded, match="short of funds"):
        compute.require_funds(account, PROVIDER_ADDRESS, fee=1)

    assert transact(
        net, key, NETWORK.ledger, compute.encode_transfer_fund(PROVIDER_ADDRESS, SERVICE_NAME, ZG)
    )
    old_session = compute.new_session_token(key, PROVIDER_ADDRESS)
    key5 = compute.new_api_key(key, PROVIDER_ADDRESS, token_id=5)
    key6 = compute.new_api_key(key, PROVIDER_ADDRESS, token_id=6)
    for token in (old_session, key5, key6):
        _, response = chat(net, key, token=token)
        assert response.status_code == 200, response.text

    assert transact(net, key, NETWORK.inference, compute.encode_revoke_token(PROVIDER_ADDRESS, 5))
    _, response = chat(net, key, token=key5)
    _expect_refusal(response, "session token has been revoked", "auth")
    _, response = chat(net, key, token=key6)
    assert response.status_code == 200

    assert transact(net, key, NETWORK.inference, compute.encode_revoke_all_tokens(PROVIDER_ADDRESS))
    account = reader.get_account(user, PROVIDER_ADDRESS)
    assert account is not None and (account.generation, account.revoked_bitmap) == (1, 0)
    _, response = chat(net, key, token=old_session)
    _expect_refusal(response, "session token has been revoked (generation expired)", "auth")
    _, response = chat(net, key)  # a fresh token carries generation 1
    assert response.status_code == 200, response.text


def test_acknowledgement_rules(net: DevnetProcess) -> None:
    key, user = funded_wallet(net, "acknowledge")
    assert transact(net, key, NETWORK.ledger, compute.encode_deposit_fund(), 5 * ZG)
    unacknowledge = compute.encode_acknowledge_tee_signer(PROVIDER_ADDRESS, False)
    assert revert_of(net, user, NETWORK.inference, unacknowledge).startswith("AccountNotExists")
    transfer = compute.encode_transfer_fund(PROVIDER_ADDRESS, SERVICE_NAME, 2 * ZG)
    assert transact(net, key, NETWORK.ledger, transfer)
    assert revert_of(net, user, NETWORK.inference, unacknowledge).startswith(
        "CannotRevokeWithNonZeroBalance"
    )
    paid_transfer = revert_of(net, user, NETWORK.ledger, transfer, value=ZG)
    assert "no reason given" in paid_transfer, "transferFund is not payable"


def test_deposit_for_someone_else(net: DevnetProcess) -> None:
    _, recipient = funded_wallet(net, "recipient", native=5 * ZG)
    deposit_for = compute.encode_deposit_fund_for(recipient)
    assert transact(net, DEV_ACCOUNT_KEY, NETWORK.ledger, deposit_for, 3 * ZG)
    ledger = contracts(net).get_ledger(recipient)
    assert ledger is not None and ledger.total_balance == 3 * ZG
    add_again = compute.encode_add_ledger("")
    assert revert_of(net, recipient, NETWORK.ledger, add_again, 3 * ZG).startswith("LedgerExists")


def test_a_call_the_sender_cannot_pay_for_is_refused(net: DevnetProcess) -> None:
    """As geth and anvil answer: the devnet used to lend a short sender the value."""
    _, unfunded = wallet("call-without-funds")
    call = {
        "from": unfunded,
        "to": NETWORK.ledger,
        "data": "0x" + compute.encode_add_ledger("").hex(),
        "value": hex(3 * ZG),
    }
    answer = rpc_raw(net.rpc_url, "eth_call", [call, "latest"])
    assert "result" not in answer, answer
    assert "insufficient funds for gas * price + value" in answer["error"]["message"].lower()


def test_retrieve_after_lock_time_and_refund(net: DevnetProcess) -> None:
    key, user = funded_wallet(net, "retrieve")
    reader = contracts(net)
    assert transact(net, key, NETWORK.ledger, compute.encode_deposit_fund(), 4 * ZG)
    transfer = compute.encode_transfer_fund(PROVIDER_ADDRESS, SERVICE_NAME, ZG)
    assert transact(net, key, NETWORK.ledger, transfer)
    retrieve = compute.encode_retrieve_fund([PROVIDER_ADDRESS], SERVICE_NAME)

    assert transact(net, key, NETWORK.ledger, retrieve)
    account = reader.get_account(user, PROVIDER_ADDRESS)
    assert account is not None and account.pending_refund == ZG
    assert [r.amount for r in account.pending_refunds] == [ZG]
    ledger = reader.get_ledger(user)
    assert ledger is not None and ledger.available_balance == 3 * ZG

    rpc(net.rpc_url, "evm_increaseTime", [24 * 3600])
    assert transact(net, key, NETWORK.ledger, retrieve)
    account = reader.get_account(user, PROVIDER_ADDRESS)
    assert account is not None and (account.balance, account.pending_refund) == (0, 0)
    ledger = reader.get_ledger(user)
    assert ledger is not None and ledger.available_balance == ledger.total_balance == 4 * ZG

    partial = revert_of(net, user, NETWORK.ledger, compute.encode_refund(2 * ZG))
    assert partial.startswith("MinimumDepositRequired") and "2.0 0G given" in partial
    before = int(rpc(net.rpc_url, "eth_getBalance", [user, "latest"]), 16)
    assert transact(net, key, NETWORK.ledger, compute.encode_refund(4 * ZG))
    after = int(rpc(net.rpc_url, "eth_getBalance", [user, "latest"]), 16)
    assert 3 * ZG < after - before <= 4 * ZG
    assert reader.get_ledger(user) is None
    assert reader.get_account(user, PROVIDER_ADDRESS) is None


def test_ledger_rules_of_the_official_contracts(net: DevnetProcess) -> None:
    """LedgerManager.sol / InferenceAccount.sol, where they differ from our first spec."""
    key, user = funded_wallet(net, "official rules")
    reader = contracts(net)
    assert transact(net, key, NETWORK.ledger, compute.encode_deposit_fund(), 10 * ZG)
    transfer = compute.encode_transfer_fund(PROVIDER_ADDRESS, SERVICE_NAME, 4 * ZG)
    assert transact(net, key, NETWORK.ledger, transfer)  # 6 0G available, 10 0G total

    # refund: more than available is InsufficientBalance; what stays *available* is 0 or >= 3
    too_much = revert_of(net, user, NETWORK.ledger, compute.encode_refund(7 * ZG))
    assert too_much.startswith("InsufficientBalance")
    dust = revert_of(net, user, NETWORK.ledger, compute.encode_refund(4 * ZG))
    assert dust.startswith("MinimumDepositRequired") and "2.0 0G given" in dust

    # retrieve skips providers without a sub-account; a zero deposit is refused
    stranger = compute.address_of("0x" + "22" * 32)
    retrieve = compute.encode_retrieve_fund([stranger, PROVIDER_ADDRESS], SERVICE_NAME)
    assert transact(net, key, NETWORK.ledger, retrieve)
    account = reader.get_account(user, PROVIDER_ADDRESS)
    assert account is not None and account.pending_refund == 4 * ZG
    zero = revert_of(net, user, NETWORK.ledger, compute.encode_deposit_fund())
    assert zero.startswith("ZeroAmountNotAllowed")

    # an unknown service name reverts; an unregistered contract has an empty record
    unknown = compute.encode_get_ledger_providers(user, "inference-v9")
    assert revert_of(net, user, NETWORK.ledger, unknown).startswith("ServiceNotFound")
    other = ComputeContracts(eth_call_over(net.rpc_url), ledger=NETWORK.ledger, inference=stranger)
    assert other.get_service_info().full_name == ""
    with pytest.raises(NotFound, match="no service registered"):
        other.inference_service_name()

    # the 0G of sub-accounts is held by InferenceServing, not the LedgerManager
    held = int(rpc(net.rpc_url, "eth_getBalance", [NETWORK.inference, "latest"]), 16)
    assert held >= 14 * ZG  # the seeded 10 0G and these 4


# --- devnet fault switches ----------------------------------------------------------------------


def test_tampered_signature_is_caught(net: DevnetProcess) -> None:
    body, response = chat(net, DEV_ACCOUNT_KEY, "sign this")
    chat_id = response.headers["ZG-Res-Key"]
    provider_settings(net, tamper_signatures=True)
    try:
        signature = provider_get(net, f"/v1/proxy/signature/{chat_id}").json()
    finally:
        provider_settings(net, tamper_signatures=False)
    check = compute.check_response_signature(
        service(net), signature, request_body=body, response_body=response.content
    )
    assert check.status == "mismatch"
    with pytest.raises(IntegrityError):
        check.require()


def test_injected_provider_failures(net: DevnetProcess) -> None:
    provider_settings(net, fail_status=503, fail_count=2)
    statuses = [chat(net, DEV_ACCOUNT_KEY)[1].status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    provider_settings(net, fail_status=429, fail_count=-1, retry_after=3)
    try:
        _, response = chat(net, DEV_ACCOUNT_KEY)
    finally:
        settings = provider_settings(net, fail_status=None, retry_after=None)
    assert settings["fail_status"] is None
    failure = compute.classify_provider_error(
        response.status_code, response.content, response.headers
    )
    assert failure.kind == "retryable" and failure.retry_after == 3.0
    assert chat(net, DEV_ACCOUNT_KEY)[1].status_code == 200
    stats = provider_get(net, "/devnet/stats").json()
    assert stats["chat_requests"] >= stats["served"] + 3


def test_state_survives_a_restart(tmp_path: Path) -> None:
    key, user = wallet("restart")
    with start_devnet(tmp_path / "devnet", nodes=1) as first:
        assert transact(first, DEV_ACCOUNT_KEY, user, b"", 10 * ZG)
        assert transact(first, key, NETWORK.ledger, compute.encode_deposit_fund(), 3 * ZG)
    with start_devnet(tmp_path / "devnet", nodes=1) as second:
        reader = contracts(second)
        ledger = reader.get_ledger(user)
        assert ledger is not None and ledger.total_balance == 3 * ZG
        assert reader.get_service(PROVIDER_ADDRESS).url == second.provider_url
        _, response = chat(second, DEV_ACCOUNT_KEY)
        assert response.status_code == 200
