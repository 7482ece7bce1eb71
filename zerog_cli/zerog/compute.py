"""0G compute network protocol, client side (specs/0g-compute.md).

The one import for callers. Pieces live in sibling modules:

- `compute_abi`: LedgerManager / InferenceServing calls, typed results,
  custom-error decoding, `ComputeContracts` (view calls over any eth_call).
- `compute_auth`: the ``Authorization: Bearer app-sk-…`` token, built and
  (provider side) checked.
- `compute_fees`: fees in neuron, estimates, 0G amounts as text.
- `compute_provider`: provider URLs, request bodies, error classification,
  SSE streams, response-signature verification.

No transport lives here: callers bring their own JSON-RPC and HTTP clients.
Nothing heavy is imported at module level.
"""

from __future__ import annotations

from dataclasses import dataclass

from zerog_cli.errors import ConfigError
from zerog_cli.infra.units import parse_0g
from zerog_cli.zerog.abi import (
    AbiError,
    AbiFunction,
    ContractAbi,
    DecodedRevert,
    checksum_address,
    keccak256,
    revert_data_from,
)
from zerog_cli.zerog.compute_abi import (
    COMPUTE_ERRORS,
    INFERENCE_SERVING,
    LEDGER_MANAGER,
    MAX_PAGE_SIZE,
    ComputeContracts,
    EthCall,
    Ledger,
    Refund,
    Service,
    ServiceInfo,
    ServicePage,
    SubAccount,
    decode_get_account,
    decode_get_all_services,
    decode_get_ledger,
    decode_get_ledger_providers,
    decode_get_service,
    decode_get_service_info,
    encode_acknowledge_tee_signer,
    encode_add_ledger,
    encode_deposit_fund,
    encode_deposit_fund_for,
    encode_get_account,
    encode_get_all_services,
    encode_get_ledger,
    encode_get_ledger_providers,
    encode_get_service,
    encode_get_service_info,
    encode_lock_time,
    encode_refund,
    encode_retrieve_fund,
    encode_revoke_all_tokens,
    encode_revoke_token,
    encode_revoke_tokens,
    encode_transfer_fund,
    revert_error,
)
from zerog_cli.zerog.compute_auth import (
    EPHEMERAL_MAX_DURATION_MS,
    EPHEMERAL_TOKEN_ID,
    SessionToken,
    SignedToken,
    address_of,
    check_authorization,
    eip191_digest_32,
    new_api_key,
    new_session_token,
    parse_authorization,
    pick_token_id,
    random_nonce,
    recover_token_signer,
    sign_session_token,
    validate_token,
)
from zerog_cli.zerog.compute_fees import (
    MAX_REFUNDS_PER_ACCOUNT,
    MIN_ACCOUNT_BALANCE,
    MIN_LOCKED_BALANCE,
    MIN_TRANSFER_AMOUNT,
    NEURON_PER_0G,
    Fee,
    PriceTier,
    Pricing,
    chat_fee,
    estimate_chat_fee,
    estimate_tokens,
    fee_for,
    format_0g,
    image_fee,
    require_funds,
    speech_to_text_fee,
    spendable,
    usage_count,
)
from zerog_cli.zerog.compute_provider import (
    BINDING_MEANING,
    RESPONSE_KEY_HEADER,
    ChatStream,
    ProviderFailure,
    SignatureCheck,
    SignedText,
    chat_answer,
    chat_completions_url,
    chat_id_from,
    chat_request_body,
    check_response_signature,
    classify_provider_error,
    expected_response_signer,
    go_json_bytes,
    iter_stream_deltas,
    models_url,
    parse_models,
    parse_retry_after,
    parse_signed_text,
    parse_unsettled_fee,
    provider_error_message,
    recover_response_signer,
    response_signing_text,
    routing_proof_text,
    sha256_hex,
    sign_response_text,
    signature_not_ready,
    signature_url,
    unsettled_fee_url,
    verify_response_signature,
)


@dataclass(frozen=True)
class ComputeNetwork:
    """Contract addresses of one 0G compute deployment (TS SDK 0.9.0 table)."""

    name: str
    chain_id: int
    ledger: str
    inference: str
    fine_tuning: str


NETWORKS: dict[int, ComputeNetwork] = {
    16661: ComputeNetwork(
        "mainnet",
        16661,
        ledger="0x2dE54c845Cd948B72D2e32e39586fe89607074E3",
        inference="0x47340d900bdFec2BD393c626E12ea0656F938d84",
        fine_tuning="0x4e3474095518883744ddf135b7E0A23301c7F9c0",
    ),
    16602: ComputeNetwork(
        "testnet",
        16602,
        ledger="0xE70830508dAc0A97e6c087c75f402f9Be669E406",
        inference="0xa79F4c8311FF93C06b8CfB403690cc987c93F91E",
        fine_tuning="0xC6C075D8039763C8f1EbE580be5ADdf2fd6941bA",
    ),
    31337: ComputeNetwork(
        "hardhat",
        31337,
        ledger="0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
        inference="0x0165878A594ca255338adfa4d48449f69242Eb8F",
        fine_tuning="0xA51c1fc2f0D1a1b8494Ed1FE312d7C3a78Ed91C0",
    ),
}

TESTNET_DEV_SET = ComputeNetwork(
    "testnet-dev",
    16602,
    ledger="0x815B93ab4Ba4BDF530dbF1552649a3c534F8BbF7",
    inference="0x41bD7Ac5c19000A974D5c192bcd5FB67b56C85c5",
    fine_tuning="0x4e4158DF35CfdC0ac63264D3E112F5B8E9a5c569",
)
"""The SDK's set under ``ZG_DEV_MODE=true``; only by explicit choice."""


def network_for_chain(chain_id: int) -> ComputeNetwork:
    """Addresses for a chain id; unknown ids are refused (the SDK silently uses testnet's)."""
    try:
        return NETWORKS[chain_id]
    except KeyError:
        raise ConfigError(
            f"no known 0G compute contracts on chain {chain_id}",
            hint="give the LedgerManager and InferenceServing addresses explicitly",
        ) from None


__all__ = [
    "BINDING_MEANING",
    "COMPUTE_ERRORS",
    "EPHEMERAL_MAX_DURATION_MS",
    "EPHEMERAL_TOKEN_ID",
    "INFERENCE_SERVING",
    "LEDGER_MANAGER",
    "MAX_PAGE_SIZE",
    "MAX_REFUNDS_PER_ACCOUNT",
    "MIN_ACCOUNT_BALANCE",
    "MIN_LOCKED_BALANCE",
    "MIN_TRANSFER_AMOUNT",
    "NETWORKS",
    "NEURON_PER_0G",
    "RESPONSE_KEY_HEADER",
    "TESTNET_DEV_SET",
    "AbiError",
    "AbiFunction",
    "ChatStream",
    "ComputeContracts",
    "ComputeNetwork",
    "ContractAbi",
    "DecodedRevert",
    "EthCall",
    "Fee",
    "Ledger",
    "PriceTier",
    "Pricing",
    "ProviderFailure",
    "Refund",
    "Service",
    "ServiceInfo",
    "ServicePage",
    "SessionToken",
    "SignatureCheck",
    "SignedText",
    "SignedToken",
    "SubAccount",
    "address_of",
    "chat_answer",
    "chat_completions_url",
    "chat_fee",
    "chat_id_from",
    "chat_request_body",
    "check_authorization",
    "check_response_signature",
    "checksum_address",
    "classify_provider_error",
    "decode_get_account",
    "decode_get_all_services",
    "decode_get_ledger",
    "decode_get_ledger_providers",
    "decode_get_service",
    "decode_get_service_info",
    "eip191_digest_32",
    "encode_acknowledge_tee_signer",
    "encode_add_ledger",
    "encode_deposit_fund",
    "encode_deposit_fund_for",
    "encode_get_account",
    "encode_get_all_services",
    "encode_get_ledger",
    "encode_get_ledger_providers",
    "encode_get_service",
    "encode_get_service_info",
    "encode_lock_time",
    "encode_refund",
    "encode_retrieve_fund",
    "encode_revoke_all_tokens",
    "encode_revoke_token",
    "encode_revoke_tokens",
    "encode_transfer_fund",
    "estimate_chat_fee",
    "estimate_tokens",
    "expected_response_signer",
    "fee_for",
    "format_0g",
    "go_json_bytes",
    "image_fee",
    "iter_stream_deltas",
    "keccak256",
    "models_url",
    "network_for_chain",
    "new_api_key",
    "new_session_token",
    "parse_0g",
    "parse_authorization",
    "parse_models",
    "parse_retry_after",
    "parse_signed_text",
    "parse_unsettled_fee",
    "pick_token_id",
    "provider_error_message",
    "random_nonce",
    "recover_response_signer",
    "recover_token_signer",
    "require_funds",
    "response_signing_text",
    "revert_data_from",
    "revert_error",
    "routing_proof_text",
    "sha256_hex",
    "sign_response_text",
    "sign_session_token",
    "signature_not_ready",
    "signature_url",
    "speech_to_text_fee",
    "spendable",
    "unsettled_fee_url",
    "usage_count",
    "validate_token",
    "verify_response_signature",
]
