"""Response signatures as 0G brokers make them: one vector per signed-text family.

Each vector was generated from the broker's rules (not from zerog's code):
hashlib SHA-256 of fixed bytes, the text assembled as the broker assembles it,
signed with Hardhat key #2 by eth-account's EIP-191 ``sign_message`` (RFC 6979,
so the signature is reproducible). The rules, in the official sources:

- format A, ``sha256hex(req):sha256hex(resp)`` (129 bytes): 0g-serving-broker
  ``api/inference/internal/ctrl/signing.go`` ``signChatWithKey``
  (``text := fmt.Sprintf("%s:%s", requestSha256, responseSha256)``, signed as
  ``accounts.TextHash([]byte(text))`` with v raised to 27/28);
- format B, the routing proof: same file ``signCentralizedRoutingProof`` with
  ``api/common/tee/tls.go`` ``FormatRoutingProofText``
  (``"%s:%s:%s:%s:%s"`` of request hash, response hash, providerType,
  providerIdentity, TLS fingerprint) and ``NormalizeCertFingerprint`` (32 bytes
  of lower-case hex);
- images: ``signImageResponse`` (``sha256Hex(reqBody) + ":" +
  strings.Join(imgHashes, ",")``);
- end-to-end encrypted: 0g-pc-e2ee ``protocol/proof/proof.go`` ``formatText``
  (``scheme + ":" + hex(reqH) + ":" + hex(respH)``, scheme ``zg-sig-v1/e2ee-ct``);
- what is hashed: ``proxy.go`` ``ProcessHTTPRequest`` reads the request body
  back from the *forwarded* request (after ``EnsureStreamOptions``,
  ``RewriteLoRARequest``, ``EnforceConfiguredModel``; ``max_output_cap.go``
  ``CapMaxOutputTokens``) and ``chatbot.go`` ``decodeAndProcess`` signs
  ``signData``, "the exact byte stream delivered to the client";
- how the official SDK verifies: 0g-compute-ts-sdk
  ``src.ts/sdk/inference/broker/response.ts`` ``processResponse`` and
  ``verifier.ts`` ``verifySignature`` (``ethers.hashMessage(text)``,
  ``recoverAddress`` compared case-insensitively with ``teeSignerAddress``, or
  ``TargetTeeAddress`` for a separated decentralized service).
"""

from __future__ import annotations

from typing import Any

import pytest

from zerog_cli.devnet.provider import cap_output_tokens
from zerog_cli.zerog import compute
from zerog_cli.zerog.compute import Service

TEE = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
"""Hardhat #2, the signer of every vector below."""
OTHER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"

REQUEST = b'{"max_tokens":1024,"messages":[{"content":"hi","role":"user"}],"model":"devnet-echo-1"}'
RESPONSE = (
    b'{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":'
    b'{"role":"assistant","content":"You said: hi"},"finish_reason":"stop"}]}'
)
CAPPED_REQUEST = (
    b'{"max_tokens":16,"messages":[{"content":"hi","role":"user"}],"model":"devnet-echo-1"}'
)
"""REQUEST as a broker with ``maxCompletionTokens`` 16 forwards it (Go ``json.Marshal``)."""

REQUEST_SHA = "0cdd9962c1fc0458e3aa6c8f9e023f704dc93b0be45d76afbf56ab4b22711726"
RESPONSE_SHA = "e946f93df9315d0d94e3e42421b367d433a7e6f6071130c5689c847f23104894"
CAPPED_SHA = "6eaa5123855ef4558f5749aeb5bad2ef79fb25f116772f3dbb4df0e12bfc2fc2"
FINGERPRINT = "5908f84ad44474a4e344a6e376786ee8cf041ef7acc3ca9e3242f7d8c041b579"
"""sha256 of b"leaf certificate DER", as tls.go ``CertFingerprintFromDER`` computes it."""

VECTORS: dict[str, dict[str, str]] = {
    "A": {
        "text": f"{REQUEST_SHA}:{RESPONSE_SHA}",
        "signature": "0xff690036a8a37b71c4083424b13eeeebb9a79d56095dd170e671a51a5bf2e6bb"
        "5e3be877bdbf78c04bc78670d70effa98c0044957c1a782bf7fc8b6f896109b41c",
    },
    "B": {
        "text": f"{REQUEST_SHA}:{RESPONSE_SHA}:centralized:api.upstream.example:{FINGERPRINT}",
        "signature": "0x65255074d518300ad4b8ae510d7218e04dd454f86d81488a0a449dd87a3b4843"
        "1835671dd37b65b1896690fb33d681a0039f93f8f61dbd673cf5e5a9e667bfb21b",
    },
    "image": {
        "text": f"{REQUEST_SHA}:"
        "879dcacb851a161fad4eba6553f7eadb9f5873efc23cb7d22322d8e8ec822179,"
        "6e474fbcce142d470a3f000a0877e16f62c25053a9c6a2739ae88b15502e9897",
        "signature": "0x72577babd831b33bc4e87ac111ad394771145f1bbe0c4e335f944da5f2edff3b"
        "38abb238726143c511c73bb94c21de348d0e4d7cce5e586962c0e60f308a8d8b1c",
    },
    "e2ee": {
        "text": "zg-sig-v1/e2ee-ct:"
        "6747873c06c9d48ec64fceb01b984772952ba08abae40fe292af993305b4d619:"
        "59c699c120d1d01d9c0f92bd3c2a7ce5f909692a86423f1e4706c6c95765d411",
        "signature": "0xebd25b54fe862a0f90d80842534b5391c5d5cacf9f72f44df711a77cf5a342a3"
        "56ffa37e7bec679d6049bb4f2808ea7bba63c078a9b4ae4e5e6666842f7949681c",
    },
    "A-rewritten": {
        "text": f"{CAPPED_SHA}:{RESPONSE_SHA}",
        "signature": "0x37881039968b3dc8e60d64853a9e8c1d1f9ef32512b1a4eeecc4418299a5b66b"
        "5f1f50a3f2f7a072bde1b917e9f01829232638fe89e4959274aeeaffc6a8a0c01b",
    },
}


def _service(**changes: Any) -> Service:
    fields: dict[str, Any] = {
        "provider": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "service_type": "chatbot",
        "url": "https://provider.example.invalid",
        "input_price": 1,
        "output_price": 1,
        "updated_at": 0,
        "model": "devnet-echo-1",
        "verifiability": "TeeML",
        "additional_info": '{"TargetSeparated":false}',
        "tee_signer_address": TEE,
        "tee_signer_acknowledged": True,
    }
    fields.update(changes)
    return Service(**fields)


def _check(name: str, service: Service | None = None, **bytes_: bytes) -> compute.SignatureCheck:
    return compute.check_response_signature(
        service or _service(),
        {**VECTORS[name], "signing_address": TEE, "signing_algo": "ecdsa"},
        request_body=bytes_.get("request", REQUEST),
        response_body=bytes_.get("response", RESPONSE),
    )


def test_vectors_come_out_of_zerogs_signer_and_text_builders() -> None:
    from eth_account import Account
    from eth_account.messages import encode_defunct

    assert len(VECTORS["A"]["text"]) == 129
    assert compute.response_signing_text(REQUEST, RESPONSE) == VECTORS["A"]["text"]
    assert compute.response_signing_text(CAPPED_REQUEST, RESPONSE) == VECTORS["A-rewritten"]["text"]
    assert (
        compute.routing_proof_text(
            REQUEST, RESPONSE, "centralized", "api.upstream.example", FINGERPRINT
        )
        == VECTORS["B"]["text"]
    )
    key = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
    for vector in VECTORS.values():
        assert compute.sign_response_text(key, vector["text"]) == vector["signature"]
        raw = bytes.fromhex(vector["signature"][2:])
        assert raw[64] in (27, 28)
        assert Account.recover_message(encode_defunct(text=vector["text"]), signature=raw) == TEE


def test_families_are_told_apart() -> None:
    a = compute.parse_signed_text(VECTORS["A"]["text"])
    assert (a.family, a.request_hash, a.response_hash) == ("A", REQUEST_SHA, RESPONSE_SHA)
    b = compute.parse_signed_text(VECTORS["B"]["text"])
    assert (b.family, b.provider_type, b.provider_identity, b.tls_cert_fingerprint) == (
        "B",
        "centralized",
        "api.upstream.example",
        FINGERPRINT,
    )
    # The broker escapes nothing: an identity with a port keeps its colon.
    with_port = f"{REQUEST_SHA}:{RESPONSE_SHA}:centralized:host:8443:{FINGERPRINT}"
    assert compute.parse_signed_text(with_port).provider_identity == "host:8443"
    assert compute.parse_signed_text(VECTORS["image"]["text"]).family == "image"
    assert compute.parse_signed_text(VECTORS["e2ee"]["text"]).family == "e2ee"
    for junk in (
        "",
        "hello",
        f"{REQUEST_SHA}",
        f"{REQUEST_SHA}:xyz",
        f"{REQUEST_SHA[:63]}:{RESPONSE_SHA}",
    ):
        assert compute.parse_signed_text(junk).family == "unknown", junk


def test_format_a_binds_request_and_response() -> None:
    check = _check("A")
    assert check.verified and check.family == "A"
    assert check.binding == "request_and_response"
    assert check.routing is None


def test_format_b_binds_both_and_reports_the_routing_proof() -> None:
    centralized = _service(
        additional_info='{"ProviderType":"centralized","TargetSeparated":true,'
        '"TargetTeeAddress":"0x90F79bf6EB2c4f870365E785982E1f101E93b906"}'
    )
    check = _check("B", centralized)
    assert check.verified, check.reason
    assert check.binding == "request_and_response"
    assert check.routing == {
        "provider_type": "centralized",
        "provider_identity": "api.upstream.example",
        "tls_cert_fingerprint": FINGERPRINT,
    }


def test_a_rewritten_request_is_not_tampering() -> None:
    """The broker signs the body it forwarded (max_tokens capped): the response still binds."""
    check = _check("A-rewritten")
    assert check.verified, check.reason
    assert check.binding == "response_only"
    assert "request rewritten by the provider" in check.reason
    assert _check("A-rewritten", request=CAPPED_REQUEST).binding == "request_and_response"


def test_unknown_families_verify_the_signer_only() -> None:
    for name in ("image", "e2ee"):
        check = _check(name)
        assert check.verified, check.reason
        assert check.binding == "signer_only"
        assert "signer verified, content not bound" in check.reason


def test_wrong_signer_and_other_response_bytes_are_mismatches() -> None:
    wrong = _check("A", _service(tee_signer_address=OTHER))
    assert wrong.status == "mismatch" and wrong.recovered_signer == TEE
    for name in ("A", "B", "A-rewritten"):
        tampered = _check(name, response=RESPONSE + b" ")
        assert tampered.status == "mismatch", name
        assert "response hash" in tampered.reason
    # The signing_address field is never trusted.
    lying = compute.check_response_signature(
        _service(tee_signer_address=OTHER), {**VECTORS["A"], "signing_address": OTHER}
    )
    assert lying.status == "mismatch"


def test_signature_not_ready_answers() -> None:
    """404 (current brokers) and an older broker's 400 chat_id_not_found are "not yet"."""
    assert compute.signature_not_ready(404, b'{"error":"nope"}')
    old = (
        b'{"error":"Provider proxy: prepare HTTP request: '
        b'Chat id not found or expired, chat_id_not_found"}'
    )
    assert compute.signature_not_ready(400, old)
    assert not compute.signature_not_ready(400, b'{"error":"session token expired"}')
    assert not compute.signature_not_ready(500, old)


def test_request_bytes_are_what_go_re_marshals() -> None:
    """A broker that re-marshals an unchanged body (EnforceConfiguredModel) forwards our bytes."""
    assert compute.go_json_bytes({"z": 1, "a": "<b>&\u2028é"}) == (
        '{"a":"\\u003cb\\u003e\\u0026\\u2028é","z":1}'.encode()
    )
    body = compute.chat_request_body(
        "devnet-echo-1", [{"role": "user", "content": "hi"}], max_tokens=1024
    )
    assert body == REQUEST
    streamed = compute.chat_request_body("m", [], stream=True, temperature=1.0)
    assert streamed == (
        b'{"messages":[],"model":"m","stream":true,"stream_options":{"include_usage":true},'
        b'"temperature":1}'
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"max_tokens": 5}, {"max_tokens": 5}),
        ({"max_tokens": 1000}, {"max_tokens": 16}),
        ({"max_tokens": 1000.0}, {"max_tokens": 16}),
        ({"max_tokens": "1000"}, {"max_tokens": 16}),
        ({"max_tokens": "lots"}, {"max_tokens": 16}),
        ({"max_tokens": None}, {"max_tokens": 16}),
        ({"max_tokens": -1}, {"max_tokens": 16}),
        ({}, {"max_tokens": 16}),
        ({"max_tokens": None, "max_completion_tokens": 8}, {"max_completion_tokens": 8}),
    ],
)
def test_output_cap_follows_the_broker(body: dict[str, Any], expected: dict[str, Any]) -> None:
    """max_output_cap.go ``CapMaxOutputTokens``: lower, drop null/<=0, replace junk, inject."""
    changed = cap_output_tokens(body, 16, 4096, 100)
    assert body == expected
    assert changed == (expected != {"max_tokens": 5})


def test_injected_cap_fits_the_context_window() -> None:
    """``injectableOutputCap``: context minus a 3-bytes-per-token prompt estimate, if positive."""
    body: dict[str, Any] = {}
    assert cap_output_tokens(body, 16, 20, 30)
    assert body == {"max_tokens": 10}
    full: dict[str, Any] = {}
    assert not cap_output_tokens(full, 16, 20, 90)
    assert full == {}
