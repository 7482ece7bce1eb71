"""ABI of the 0G compute contracts (LedgerManager, InferenceServing) and their results.

Written from specs/0g-compute.md sections 1.2 and 2: call encodings, typed
results, custom-error decoding into sentences, and a small reader that runs the
view calls through any ``eth_call(to, data) -> bytes`` function (this module has
no transport of its own). The devnet contracts use the same `AbiFunction` and
`AbiError` objects in the other direction (decode calls, encode results and
reverts), so client and devnet cannot drift apart.

`eth_abi` is imported inside the functions that need it: importing this module
must stay cheap because the CLI imports it at start-up.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from zerog_cli.errors import NotFound, QuotaExceeded, RemoteError, UsageError, ZerogError
from zerog_cli.zerog.abi import (
    AbiError,
    AbiFunction,
    ContractAbi,
    checksum_address,
    decode_revert,
    revert_data_from,
)

EthCall = Callable[[str, bytes], bytes]
"""``eth_call(contract_address, calldata) -> return data``; raises on revert.

The exception must carry the revert data somewhere `revert_data_from` can find
it (for example `RemoteError(data="0x08ca03ac…")`, as a JSON-RPC node returns it).
"""

MAX_PAGE_SIZE = 50
"""`getAllServices` refuses a larger `limit` (`LimitTooLarge(limit, 50)`)."""

SERVICE_TUPLE = "(address,string,string,uint256,uint256,uint256,string,string,string,address,bool)"
REFUND_TUPLE = "(uint256,uint256,uint256,bool)"
ACCOUNT_TUPLE = (
    "(address,address,uint256,uint256,uint256,"
    f"{REFUND_TUPLE}[],string,bool,uint256,uint256,uint256)"
)
LEDGER_TUPLE = "(address,uint256,uint256,string)"
SERVICE_INFO_TUPLE = "(address,address,string,string,string,string,bool,uint256)"


def _neuron_text(amount: int) -> str:
    from zerog_cli.zerog.compute_fees import format_0g

    return f"{format_0g(amount)} 0G"


LEDGER_MANAGER = ContractAbi(
    "LedgerManager",
    [
        AbiFunction("getLedger", ["address"], [LEDGER_TUPLE]),
        AbiFunction("addLedger", ["string"], ["uint256", "uint256"]),
        AbiFunction("depositFund"),
        AbiFunction("depositFundFor", ["address"]),
        AbiFunction("transferFund", ["address", "string", "uint256"]),
        AbiFunction("retrieveFund", ["address[]", "string"]),
        AbiFunction("refund", ["uint256"]),
        AbiFunction("getLedgerProviders", ["address", "string"], ["address[]"]),
        AbiFunction("getServiceInfo", ["address"], [SERVICE_INFO_TUPLE]),
        AbiFunction("getServiceAddressByName", ["string"], ["address"]),
        AbiFunction("getAllLedgers", ["uint256", "uint256"], [LEDGER_TUPLE + "[]", "uint256"]),
        AbiFunction("deleteLedger"),
    ],
    [
        AbiError(
            "LedgerNotExists",
            ["address"],
            lambda a: f"no compute ledger exists for {a[0]}: deposit at least 3 0G first",
            QuotaExceeded,
        ),
        AbiError(
            "InsufficientBalance",
            ["address"],
            lambda a: f"insufficient balance in the compute ledger of {a[0]}",
            QuotaExceeded,
        ),
        AbiError(
            "InsufficientAvailableBalance",
            ["uint256", "uint256"],
            lambda a: (
                f"insufficient available ledger balance: {_neuron_text(a[0])} available, "
                f"{_neuron_text(a[1])} required"
            ),
            QuotaExceeded,
        ),
        AbiError(
            "MinimumDepositRequired",
            ["uint256", "uint256"],
            lambda a: (
                f"deposit too small: {_neuron_text(a[0])} given, "
                f"at least {_neuron_text(a[1])} required"
            ),
            QuotaExceeded,
        ),
        AbiError(
            "LedgerLocked",
            [],
            lambda a: "the compute ledger is locked by another operation; try again shortly",
        ),
        AbiError(
            "ServiceNotFound",
            ["address"],
            lambda a: f"the ledger knows no compute service at {a[0]}",
            NotFound,
        ),
        AbiError(
            "TooManyProviders",
            ["uint256", "uint256"],
            lambda a: f"too many providers: {a[0]} given, at most {a[1]} allowed",
            UsageError,
        ),
        AbiError(
            "TooManyProvidersForService",
            ["uint256", "uint256"],
            lambda a: f"the ledger already has {a[0]} providers, at most {a[1]} allowed",
            UsageError,
        ),
        AbiError(
            "LedgerExists",
            ["address"],
            lambda a: f"a compute ledger already exists for {a[0]}: deposit into it instead",
            UsageError,
        ),
        AbiError(
            "ZeroAmountNotAllowed", [], lambda a: "the amount must be more than 0", UsageError
        ),
        AbiError(
            "ZeroAddressNotAllowed", [], lambda a: "the zero address is not allowed", UsageError
        ),
        AbiError(
            "AdditionalInfoTooLong",
            ["uint256", "uint256"],
            lambda a: f"additional info of {a[0]} bytes is longer than the {a[1]} allowed",
            UsageError,
        ),
        AbiError(
            "MustWithdrawAllFundsFirst",
            ["uint256"],
            lambda a: f"the ledger still holds {_neuron_text(a[0])}: refund it first",
            UsageError,
        ),
        AbiError("TransferFailed", [], lambda a: "the contract could not pay the 0G out"),
        AbiError("CallFailed", [], lambda a: "the serving contract refused the ledger's call"),
    ],
)

INFERENCE_SERVING = ContractAbi(
    "InferenceServing",
    [
        AbiFunction("getAllServices", ["uint256", "uint256"], [SERVICE_TUPLE + "[]", "uint256"]),
        AbiFunction("getService", ["address"], [SERVICE_TUPLE]),
        AbiFunction("serviceExists", ["address"], ["bool"]),
        AbiFunction("lockTime", [], ["uint256"]),
        AbiFunction("getAccount", ["address", "address"], [ACCOUNT_TUPLE]),
        AbiFunction("accountExists", ["address", "address"], ["bool"]),
        AbiFunction("getAllAccounts", ["uint256", "uint256"], [ACCOUNT_TUPLE + "[]", "uint256"]),
        AbiFunction(
            "getAccountsByUser",
            ["address", "uint256", "uint256"],
            [ACCOUNT_TUPLE + "[]", "uint256"],
        ),
        AbiFunction(
            "getAccountsByProvider",
            ["address", "uint256", "uint256"],
            [ACCOUNT_TUPLE + "[]", "uint256"],
        ),
        AbiFunction("getPendingRefund", ["address", "address"], ["uint256"]),
        AbiFunction("acknowledgeTEESigner", ["address", "bool"]),
        AbiFunction("revokeToken", ["address", "uint8"]),
        AbiFunction("revokeTokens", ["address", "uint8[]"]),
        AbiFunction("revokeAllTokens", ["address"]),
    ],
    [
        AbiError(
            "AccountNotExists",
            ["address", "address"],
            lambda a: (
                f"no sub-account for {a[0]} at provider {a[1]}: "
                "transfer at least 1 0G to this provider first"
            ),
            QuotaExceeded,
        ),
        AbiError(
            "AccountExists",
            ["address", "address"],
            lambda a: f"a sub-account for {a[0]} at provider {a[1]} already exists",
        ),
        AbiError(
            "ServiceNotExist",
            ["address"],
            lambda a: f"no compute service is registered for provider {a[0]}",
            NotFound,
        ),
        AbiError(
            "LimitTooLarge",
            ["uint256", "uint256"],
            lambda a: f"page size {a[0]} is larger than the contract's maximum {a[1]}",
            UsageError,
        ),
        AbiError(
            "CannotRevokeWithNonZeroBalance",
            ["address", "address", "uint256"],
            lambda a: (
                f"cannot withdraw the acknowledgement of provider {a[1]} while the "
                f"sub-account of {a[0]} still holds {_neuron_text(a[2])}"
            ),
            UsageError,
        ),
        AbiError(
            "TooManyRefunds",
            ["address", "address"],
            lambda a: (
                f"too many pending refunds for {a[0]} at provider {a[1]}: "
                "collect matured refunds first"
            ),
            UsageError,
        ),
        AbiError(
            "InvalidAddress",
            ["address"],
            lambda a: f"{a[0]} is not a valid user or provider address",
            UsageError,
        ),
        AbiError(
            "ProviderCannotBeUser",
            [],
            lambda a: "a wallet cannot fund a sub-account at its own provider address",
            UsageError,
        ),
    ],
)

COMPUTE_ERRORS = (*LEDGER_MANAGER.errors.values(), *INFERENCE_SERVING.errors.values())
"""The custom errors of both compute contracts, for :func:`abi.decode_revert`."""


def revert_error(data: bytes) -> ZerogError:
    """The project exception for a revert: funding reverts exit 4, missing services 7."""
    decoded = decode_revert(data, COMPUTE_ERRORS)
    known = {error.name: error for error in COMPUTE_ERRORS}
    if decoded.name in known and known[decoded.name].exception is not RemoteError:
        return known[decoded.name].exception(decoded.message)
    return RemoteError(
        f"execution reverted: {decoded.message}", code=3, data="0x" + data.hex(), kind="fatal"
    )


# --- typed results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    """One `InferenceServing` service, fields in ABI order."""

    provider: str
    service_type: str
    url: str
    input_price: int
    output_price: int
    updated_at: int
    model: str
    verifiability: str
    additional_info: str
    tee_signer_address: str
    tee_signer_acknowledged: bool

    @classmethod
    def from_abi(cls, values: Sequence[Any]) -> Service:
        return cls(
            provider=checksum_address(values[0]),
            service_type=values[1],
            url=values[2],
            input_price=int(values[3]),
            output_price=int(values[4]),
            updated_at=int(values[5]),
            model=values[6],
            verifiability=values[7],
            additional_info=values[8],
            tee_signer_address=checksum_address(values[9]),
            tee_signer_acknowledged=bool(values[10]),
        )

    def to_abi(self) -> tuple[Any, ...]:
        return (
            self.provider,
            self.service_type,
            self.url,
            self.input_price,
            self.output_price,
            self.updated_at,
            self.model,
            self.verifiability,
            self.additional_info,
            self.tee_signer_address,
            self.tee_signer_acknowledged,
        )

    @property
    def info(self) -> dict[str, Any]:
        """``additionalInfo`` as a JSON object; empty when missing or not a JSON object."""
        try:
            value = json.loads(self.additional_info)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @property
    def verifiable(self) -> bool:
        return self.verifiability in ("TeeML", "OpML", "ZKML")


@dataclass(frozen=True)
class ServicePage:
    services: list[Service]
    total: int


@dataclass(frozen=True)
class Refund:
    index: int
    amount: int
    created_at: int
    processed: bool


@dataclass(frozen=True)
class SubAccount:
    """A (user, provider) sub-account of `InferenceServing`; fields in ABI order."""

    user: str
    provider: str
    nonce: int
    balance: int
    pending_refund: int
    refunds: tuple[Refund, ...]
    additional_info: str
    acknowledged: bool
    valid_refunds_length: int
    generation: int
    revoked_bitmap: int

    @classmethod
    def from_abi(cls, values: Sequence[Any]) -> SubAccount:
        return cls(
            user=checksum_address(values[0]),
            provider=checksum_address(values[1]),
            nonce=int(values[2]),
            balance=int(values[3]),
            pending_refund=int(values[4]),
            refunds=tuple(Refund(int(r[0]), int(r[1]), int(r[2]), bool(r[3])) for r in values[5]),
            additional_info=values[6],
            acknowledged=bool(values[7]),
            valid_refunds_length=int(values[8]),
            generation=int(values[9]),
            revoked_bitmap=int(values[10]),
        )

    def to_abi(self) -> tuple[Any, ...]:
        return (
            self.user,
            self.provider,
            self.nonce,
            self.balance,
            self.pending_refund,
            [(r.index, r.amount, r.created_at, r.processed) for r in self.refunds],
            self.additional_info,
            self.acknowledged,
            self.valid_refunds_length,
            self.generation,
            self.revoked_bitmap,
        )

    @property
    def available(self) -> int:
        """Balance not already requested back (before the provider's unsettled fees)."""
        return self.balance - self.pending_refund

    @property
    def pending_refunds(self) -> list[Refund]:
        """The live refund requests, as `get-sub-account` lists them."""
        return [r for r in self.refunds[: self.valid_refunds_length] if r.amount != 0]


@dataclass(frozen=True)
class Ledger:
    """A wallet's main compute account in `LedgerManager`."""

    user: str
    available_balance: int
    total_balance: int
    additional_info: str

    @classmethod
    def from_abi(cls, values: Sequence[Any]) -> Ledger:
        return cls(checksum_address(values[0]), int(values[1]), int(values[2]), values[3])

    def to_abi(self) -> tuple[Any, ...]:
        return (self.user, self.available_balance, self.total_balance, self.additional_info)

    @property
    def locked(self) -> int:
        """Moved to provider sub-accounts (the CLI's "Locked" row)."""
        return self.total_balance - self.available_balance


@dataclass(frozen=True)
class ServiceInfo:
    """`LedgerManager.getServiceInfo`: ``full_name`` is the service name other calls take."""

    service_address: str
    service_contract: str
    service_type: str
    version: str
    full_name: str
    description: str
    is_recommended: bool
    registered_at: int

    @classmethod
    def from_abi(cls, values: Sequence[Any]) -> ServiceInfo:
        return cls(
            service_address=checksum_address(values[0]),
            service_contract=checksum_address(values[1]),
            service_type=values[2],
            version=values[3],
            full_name=values[4],
            description=values[5],
            is_recommended=bool(values[6]),
            registered_at=int(values[7]),
        )

    def to_abi(self) -> tuple[Any, ...]:
        return (
            self.service_address,
            self.service_contract,
            self.service_type,
            self.version,
            self.full_name,
            self.description,
            self.is_recommended,
            self.registered_at,
        )


# --- call encoders (views) and decoders -------------------------------------------------------


def encode_get_all_services(offset: int = 0, limit: int = MAX_PAGE_SIZE) -> bytes:
    return INFERENCE_SERVING.function("getAllServices").encode(offset, limit)


def decode_get_all_services(data: bytes) -> ServicePage:
    services, total = INFERENCE_SERVING.function("getAllServices").decode_output(data)
    return ServicePage([Service.from_abi(s) for s in services], int(total))


def encode_get_service(provider: str) -> bytes:
    return INFERENCE_SERVING.function("getService").encode(provider)


def decode_get_service(data: bytes) -> Service:
    return Service.from_abi(INFERENCE_SERVING.function("getService").decode_output(data)[0])


def encode_get_account(user: str, provider: str) -> bytes:
    return INFERENCE_SERVING.function("getAccount").encode(user, provider)


def decode_get_account(data: bytes) -> SubAccount:
    return SubAccount.from_abi(INFERENCE_SERVING.function("getAccount").decode_output(data)[0])


def encode_lock_time() -> bytes:
    return INFERENCE_SERVING.function("lockTime").encode()


def encode_get_ledger(user: str) -> bytes:
    return LEDGER_MANAGER.function("getLedger").encode(user)


def decode_get_ledger(data: bytes) -> Ledger:
    return Ledger.from_abi(LEDGER_MANAGER.function("getLedger").decode_output(data)[0])


def encode_get_ledger_providers(user: str, service_name: str) -> bytes:
    return LEDGER_MANAGER.function("getLedgerProviders").encode(user, service_name)


def decode_get_ledger_providers(data: bytes) -> list[str]:
    (providers,) = LEDGER_MANAGER.function("getLedgerProviders").decode_output(data)
    return [checksum_address(p) for p in providers]


def encode_get_service_info(service_contract: str) -> bytes:
    return LEDGER_MANAGER.function("getServiceInfo").encode(service_contract)


def decode_get_service_info(data: bytes) -> ServiceInfo:
    return ServiceInfo.from_abi(LEDGER_MANAGER.function("getServiceInfo").decode_output(data)[0])


# --- transaction calldata -----------------------------------------------------------------------


def encode_add_ledger(additional_info: str = "") -> bytes:
    """✎ payable, value ≥ 3 0G."""
    return LEDGER_MANAGER.function("addLedger").encode(additional_info)


def encode_deposit_fund() -> bytes:
    """✎ payable; creates the ledger when missing (then value ≥ 3 0G)."""
    return LEDGER_MANAGER.function("depositFund").encode()


def encode_deposit_fund_for(recipient: str) -> bytes:
    return LEDGER_MANAGER.function("depositFundFor").encode(recipient)


def encode_transfer_fund(provider: str, service_name: str, amount: int) -> bytes:
    """✎ ledger → sub-account; the first transfer (≥ 1 0G) also acknowledges the provider."""
    return LEDGER_MANAGER.function("transferFund").encode(provider, service_name, amount)


def encode_retrieve_fund(providers: Sequence[str], service_name: str) -> bytes:
    return LEDGER_MANAGER.function("retrieveFund").encode(list(providers), service_name)


def encode_refund(amount: int) -> bytes:
    return LEDGER_MANAGER.function("refund").encode(amount)


def encode_acknowledge_tee_signer(provider: str, acknowledged: bool = True) -> bytes:
    return INFERENCE_SERVING.function("acknowledgeTEESigner").encode(provider, acknowledged)


def encode_revoke_token(provider: str, token_id: int) -> bytes:
    return INFERENCE_SERVING.function("revokeToken").encode(provider, token_id)


def encode_revoke_tokens(provider: str, token_ids: Sequence[int]) -> bytes:
    return INFERENCE_SERVING.function("revokeTokens").encode(provider, list(token_ids))


def encode_revoke_all_tokens(provider: str) -> bytes:
    return INFERENCE_SERVING.function("revokeAllTokens").encode(provider)


# --- reader over an eth_call function -------------------------------------------------------


class ComputeContracts:
    """The view calls a client needs, run through a caller-supplied ``eth_call``.

    Reverts become project exceptions via `revert_error` (so a missing ledger is
    a funding error, exit 4), except where "not there yet" is an ordinary answer:
    `get_account` and `get_ledger` return None.
    """

    def __init__(self, eth_call: EthCall, *, ledger: str, inference: str) -> None:
        self._eth_call = eth_call
        self.ledger_address = ledger
        self.inference_address = inference

    def _call_or_absent(self, to: str, data: bytes, absent: AbiError | None) -> bytes | None:
        """Run one call; None when it reverts with ``absent``, project errors for other reverts."""
        try:
            return self._eth_call(to, data)
        except ZerogError as exc:
            revert = revert_data_from(exc)
            if revert is None:
                raise
            if absent is not None and revert[:4] == absent.selector:
                return None
            raise revert_error(revert) from exc

    def _call(self, to: str, data: bytes) -> bytes:
        result = self._call_or_absent(to, data, None)
        assert result is not None
        return result

    def get_all_services(self, offset: int = 0, limit: int = MAX_PAGE_SIZE) -> ServicePage:
        return decode_get_all_services(
            self._call(self.inference_address, encode_get_all_services(offset, limit))
        )

    def list_services(self, *, include_unacknowledged: bool = False) -> list[Service]:
        """Every service, paging past the contract's 50 per call (the SDK stops at 50)."""
        services: list[Service] = []
        offset = 0
        while True:
            page = self.get_all_services(offset, MAX_PAGE_SIZE)
            services.extend(page.services)
            offset += len(page.services)
            if not page.services or offset >= page.total:
                break
        if include_unacknowledged:
            return services
        return [s for s in services if s.tee_signer_acknowledged]

    def get_service(self, provider: str) -> Service:
        return decode_get_service(self._call(self.inference_address, encode_get_service(provider)))

    def get_account(self, user: str, provider: str) -> SubAccount | None:
        """The sub-account, or None when it does not exist yet (not funded)."""
        data = self._call_or_absent(
            self.inference_address,
            encode_get_account(user, provider),
            INFERENCE_SERVING.error("AccountNotExists"),
        )
        return None if data is None else decode_get_account(data)

    def get_ledger(self, user: str) -> Ledger | None:
        """The ledger, or None when the wallet has none yet."""
        data = self._call_or_absent(
            self.ledger_address, encode_get_ledger(user), LEDGER_MANAGER.error("LedgerNotExists")
        )
        return None if data is None else decode_get_ledger(data)

    def lock_time(self) -> int:
        data = self._call(self.inference_address, encode_lock_time())
        return int(INFERENCE_SERVING.function("lockTime").decode_output(data)[0])

    def get_ledger_providers(self, user: str, service_name: str) -> list[str]:
        data = self._call(self.ledger_address, encode_get_ledger_providers(user, service_name))
        return decode_get_ledger_providers(data)

    def get_service_info(self) -> ServiceInfo:
        data = self._call(self.ledger_address, encode_get_service_info(self.inference_address))
        return decode_get_service_info(data)

    def inference_service_name(self) -> str:
        """The name `transferFund` & co. take (e.g. ``inference-v2.0``); read, never assumed.

        The LedgerManager answers an empty record (no revert) for a contract it
        never registered, so an empty name means a wrong inference address.
        """
        name = self.get_service_info().full_name
        if not name:
            raise NotFound(
                f"the LedgerManager at {self.ledger_address} has no service registered for "
                f"the InferenceServing address {self.inference_address}"
            )
        return name
