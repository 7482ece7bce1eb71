"""The devnet's 0G compute contracts: LedgerManager and InferenceServing.

Python stand-ins at the "local hardhat" addresses of specs/0g-compute.md 1.1
(which are also the official compute SDK's ``hardhat`` addresses), speaking the
real ABI (`zerog_cli.zerog.compute_abi`, shared with the client) and reverting
with the real custom errors. The rules are the official contracts'
(0g-serving-contract: contracts/ledger/LedgerManager.sol,
contracts/inference/InferenceServing.sol, InferenceAccount.sol), which
tests/test_interop_compute_sdk.py holds the devnet to through the official SDK:

- ``addLedger`` (value at least 3 0G, else ``MinimumDepositRequired``; a second
  one ``LedgerExists``), ``depositFund`` / ``depositFundFor`` (create the
  ledger when missing, then at least 3 0G; 0 is ``ZeroAmountNotAllowed``).
- ``transferFund(provider, "inference-v2.0", amount)``: to an existing
  sub-account, pending refunds are cancelled first (newest first) and only the
  rest leaves the ledger's available balance; a new sub-account needs at least
  1 0G and is acknowledged at once. Whatever InferenceServing refuses (a zero
  provider, the user as provider) reverts as ``CallFailed()``. The real
  contract does not ask whether the provider has a service. At most 50
  providers per ledger.
- ``retrieveFund(providers, name)``: for each provider with a sub-account,
  refunds older than ``lockTime`` (24 h here; ``evm_increaseTime`` moves the
  chain's clock) are paid back to the ledger's available balance, then one new
  refund of everything not yet requested is recorded (at most 5 live refunds,
  ``TooManyRefunds``). The provider stops serving the requested part at once.
- ``refund(amount)``: available balance → wallet; what stays available must be
  0 or at least 3 0G (``MinimumDepositRequired(remaining, 3 0G)``); a ledger
  whose total reaches 0 is deleted with its sub-accounts (a recreated
  sub-account keeps its nonce and token generation).
- ``revokeToken`` sets a bit of ``revokedBitmap``; ``revokeAllTokens`` bumps
  ``generation`` and clears the bitmap; ``acknowledgeTEESigner`` toggles a
  sub-account's acknowledgement (withdrawing it needs a zero balance).

Events, as the official contracts emit them (held to the official bytecode by
tests/test_contracts_differential.py): InferenceServing's ``BalanceUpdated``
when a sub-account is opened, topped up or paid a matured refund, and
``RefundRequested`` (the newest valid refund's index) after every refund
request while any refund is valid; ``AccountDeleted`` for each sub-account of a
deleted ledger; ``TokenRevoked``, ``TokensRevoked`` and ``AllTokensRevoked``.
``addLedger`` returns ``(value, 0)``.

Native 0G moves as on chain: deposits are paid to the LedgerManager, transfers
move it to InferenceServing, matured refunds move it back, ``refund`` pays the
wallet. The provider broker never settles fees on chain here (see
`zerog_cli.devnet.provider`).

Genesis state (a fresh data folder): one acknowledged TeeML chatbot service by
Hardhat account #1 (TEE signer Hardhat #2, model ``devnet-echo-1``, the
conformance vectors' prices, URL set to the devnet's ``/provider`` at each
start), one more service for each other kind of broker in
`zerog_cli.devnet.provider_kinds` (format B, rewriting, delayed signature,
multi-model; no sub-accounts at them), and the dev account (Hardhat #0) with
a 100 0G ledger of which 10 0G are in an acknowledged sub-account at the
seeded provider, so inference works out of the box. Hardhat #3
(`UNFUNDED_ACCOUNT_ADDRESS`) has no ledger and no sub-account. The seeded 0G
is added to the genesis balances of the LedgerManager (90 0G) and
InferenceServing (10 0G).

Devnet-only extension: ``devnetRegisterServices(uint256 count)`` (owner, i.e.
the dev account, only) registers ``count`` synthetic acknowledged chatbot
services with unreachable URLs, so clients can be tested paging past the
contract's 50-per-call limit. ``POST /provider/devnet/services`` sends it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from zerog_cli.devnet.constants import (
    DEV_ACCOUNT_ADDRESS,
    INFERENCE_SERVING_ADDRESS,
    LEDGER_MANAGER_ADDRESS,
)
from zerog_cli.devnet.contracts import ChainContext, Contract, Log, Revert
from zerog_cli.zerog.abi import (
    ERROR_STRING,
    AbiError,
    AbiFunction,
    ContractAbi,
    checksum_address,
    keccak256,
)
from zerog_cli.zerog.compute_abi import (
    INFERENCE_SERVING,
    LEDGER_MANAGER,
    MAX_PAGE_SIZE,
    Ledger,
    Refund,
    Service,
    ServiceInfo,
    SubAccount,
)
from zerog_cli.zerog.compute_fees import (
    MAX_REFUNDS_PER_ACCOUNT,
    MIN_ACCOUNT_BALANCE,
    MIN_TRANSFER_AMOUNT,
    NEURON_PER_0G,
)

if TYPE_CHECKING:
    from zerog_cli.devnet.chain import Chain

PROVIDER_ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
"""Hardhat #1: the seeded provider's identity."""
TEE_SIGNER_ADDRESS = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
TEE_SIGNER_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
"""Hardhat #2, a public test key: signs the devnet provider's responses."""
UNFUNDED_ACCOUNT_ADDRESS = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
UNFUNDED_ACCOUNT_KEY = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"
"""Hardhat #3: never given a ledger at genesis, for refusal tests."""

DEVNET_MODEL = "devnet-echo-1"
INPUT_PRICE = 50_000_000_000
OUTPUT_PRICE = 100_000_000_000
SERVICE_TYPE = "inference"
SERVICE_VERSION = "v2.0"
SERVICE_NAME = f"{SERVICE_TYPE}-{SERVICE_VERSION}"
SERVICE_ADDITIONAL_INFO = '{"TargetSeparated":false,"TEEVerifier":"dstack"}'
SEED_LEDGER_BALANCE = 100 * NEURON_PER_0G
SEED_SUB_ACCOUNT_BALANCE = 10 * NEURON_PER_0G
LOCK_TIME = 24 * 3600
MAX_PROVIDERS_PER_RETRIEVE = 20
MAX_PROVIDERS_PER_USER = 50
MAX_ADDITIONAL_INFO_LENGTH = 4096
MAX_SYNTHETIC_PER_CALL = 500
ZERO_ADDRESS = "0x" + "00" * 20
ACCOUNT_LISTINGS = {"getAllAccounts": None, "getAccountsByUser": 0, "getAccountsByProvider": 1}
"""Paged sub-account views: which half of the (user, provider) key the first argument matches."""
EMPTY_SERVICE_INFO = ServiceInfo(ZERO_ADDRESS, ZERO_ADDRESS, "", "", "", "", False, 0)
"""What ``getServiceInfo`` answers for a contract the LedgerManager never registered."""
_PAYABLE = frozenset({"addLedger", "depositFund", "depositFundFor"})

DEVNET_REGISTER_SERVICES = AbiFunction("devnetRegisterServices", ["uint256"])
"""Devnet-only, owner-only: register synthetic services (not part of the real ABI)."""


BALANCE_UPDATED_TOPIC = keccak256(b"BalanceUpdated(address,address,uint256,uint256)")
REFUND_REQUESTED_TOPIC = keccak256(b"RefundRequested(address,address,uint256,uint256)")
ACCOUNT_DELETED_TOPIC = keccak256(b"AccountDeleted(address,address,uint256)")
TOKEN_REVOKED_TOPIC = keccak256(b"TokenRevoked(address,address,uint8)")
TOKENS_REVOKED_TOPIC = keccak256(b"TokensRevoked(address,address,uint8[])")
ALL_TOKENS_REVOKED_TOPIC = keccak256(b"AllTokensRevoked(address,address,uint256)")


def _key(address: str) -> str:
    return address.lower()


def _word(value: int | str) -> bytes:
    """One 32-byte ABI word: an unsigned integer or a left-padded address."""
    if isinstance(value, str):
        return bytes(12) + bytes.fromhex(value.removeprefix("0x"))
    return value.to_bytes(32, "big")


def _encode_uint8_array(values: list[int]) -> bytes:
    """ABI encoding of one ``uint8[]`` argument (offset, length, items)."""
    return _word(32) + _word(len(values)) + b"".join(_word(value) for value in values)


def _revert(error: AbiError, *args: Any) -> Revert:
    return Revert(error.encode(*args), f"execution reverted: {error.name}")


def _require(message: str) -> Revert:
    return Revert(ERROR_STRING.encode(message), f"execution reverted: {message}")


def _decode(abi: ContractAbi, data: bytes) -> tuple[AbiFunction, tuple[Any, ...]]:
    function = abi.function_for(data)
    if function is None:
        raise Revert(b"", f"execution reverted: unknown {abi.name} function")
    try:
        return function, function.decode_input(data)
    except Exception:  # eth_abi raises several types for malformed calldata
        raise Revert(b"", f"execution reverted: malformed {function.name} calldata") from None


class InferenceServingContract(Contract):
    """Services and (user, provider) sub-accounts; holds the 0G of every sub-account."""

    name = "InferenceServing"

    def __init__(self, address: str = INFERENCE_SERVING_ADDRESS) -> None:
        super().__init__(address)
        self.services: dict[str, Service] = {}
        self.accounts: dict[tuple[str, str], SubAccount] = {}
        self.retired: dict[tuple[str, str], tuple[int, int]] = {}
        """(nonce, generation) of deleted sub-accounts: a recreated one keeps them."""
        self.lock_time = LOCK_TIME
        self.synthetic_services = 0
        self.logs: list[Log] = []
        """Events of the LedgerManager call being executed (it collects them)."""

    def take_logs(self) -> list[Log]:
        logs, self.logs = self.logs, []
        return logs

    def _emit(self, topic: bytes, account: SubAccount, data: bytes) -> None:
        """An event whose indexed arguments are the sub-account's user and provider."""
        topics = [topic, _word(account.user), _word(account.provider)]
        self.logs.append(Log(self.address, topics, data))

    def _balance_updated(self, account: SubAccount) -> None:
        self._emit(
            BALANCE_UPDATED_TOPIC, account, _word(account.balance) + _word(account.pending_refund)
        )

    # -- state ----------------------------------------------------------------

    def export_state(self) -> Any:
        return {
            "services": [list(s.to_abi()) for s in self.services.values()],
            "accounts": [list(a.to_abi()) for a in self.accounts.values()],
            "retired": [[*key, *kept] for key, kept in self.retired.items()],
            "lockTime": self.lock_time,
            "syntheticServices": self.synthetic_services,
        }

    def import_state(self, state: Any) -> None:
        services = [Service.from_abi(values) for values in state["services"]]
        accounts = [SubAccount.from_abi(values) for values in state["accounts"]]
        self.services = {_key(s.provider): s for s in services}
        self.accounts = {(_key(a.user), _key(a.provider)): a for a in accounts}
        self.retired = {(u, p): (int(n), int(g)) for u, p, n, g in state.get("retired", [])}
        self.lock_time = int(state["lockTime"])
        self.synthetic_services = int(state["syntheticServices"])

    def add_service(self, service: Service) -> None:
        self.services[_key(service.provider)] = service

    def set_service_url(self, provider: str, url: str) -> None:
        """Point a service at where the devnet serves it (the port changes between runs)."""
        key = _key(provider)
        if key in self.services:
            self.services[key] = replace(self.services[key], url=url)

    def account(self, user: str, provider: str) -> SubAccount:
        account = self.accounts.get((_key(user), _key(provider)))
        if account is None:
            raise _revert(
                INFERENCE_SERVING.error("AccountNotExists"),
                checksum_address(user),
                checksum_address(provider),
            )
        return account

    def account_exists(self, user: str, provider: str) -> bool:
        return (_key(user), _key(provider)) in self.accounts

    def _store(self, account: SubAccount) -> None:
        self.accounts[(_key(account.user), _key(account.provider))] = account

    def _store_and_announce(self, account: SubAccount) -> None:
        """Store ``account`` and emit its ``BalanceUpdated``."""
        self._store(account)
        self._balance_updated(account)

    # -- calls from LedgerManager (the IServing interface) ----------------------

    @staticmethod
    def _check_pair(user: str, provider: str) -> None:
        for address in (user, provider):
            if _key(address) == ZERO_ADDRESS:
                raise _revert(INFERENCE_SERVING.error("InvalidAddress"), ZERO_ADDRESS)
        if _key(user) == _key(provider):
            raise _revert(INFERENCE_SERVING.error("ProviderCannotBeUser"))

    def add_account(self, user: str, provider: str, amount: int, info: str) -> None:
        """``addAccount``: a new sub-account holding ``amount``, acknowledged at once.

        The real contract does not ask whether ``provider`` has a service. A
        sub-account deleted before keeps its nonce and generation (old tokens
        stay revoked).
        """
        self._check_pair(user, provider)
        if self.account_exists(user, provider):
            raise _revert(
                INFERENCE_SERVING.error("AccountExists"),
                checksum_address(user),
                checksum_address(provider),
            )
        nonce, generation = self.retired.pop((_key(user), _key(provider)), (0, 0))
        self._store_and_announce(
            SubAccount(
                user=checksum_address(user),
                provider=checksum_address(provider),
                nonce=nonce,
                balance=amount,
                pending_refund=0,
                refunds=(),
                additional_info=info,
                acknowledged=True,
                valid_refunds_length=0,
                generation=generation,
                revoked_bitmap=0,
            )
        )

    def deposit(self, user: str, provider: str, cancel: int, amount: int) -> None:
        """``depositFund``: cancel ``cancel`` of the pending refunds, newest first, add ``amount``.

        A fully cancelled refund leaves the valid range; a partly cancelled one
        keeps the rest. The deposit acknowledges the provider when it was not.
        """
        self._check_pair(user, provider)
        account = self.account(user, provider)
        refunds = list(account.refunds)
        valid = account.valid_refunds_length
        cancelled = 0
        position = valid
        while cancel > cancelled and position > 0:
            position -= 1
            refund = refunds[position]
            taken = min(refund.amount, cancel - cancelled)
            refunds[position] = replace(refund, amount=refund.amount - taken)
            cancelled += taken
            if refund.amount == taken:
                valid -= 1
        self._store_and_announce(
            replace(
                account,
                balance=account.balance + amount,
                pending_refund=account.pending_refund - cancelled,
                refunds=tuple(refunds),
                valid_refunds_length=valid,
                acknowledged=True,
            )
        )

    def process_refund(self, chain: ChainContext, user: str, provider: str) -> int:
        """``processRefund``: drop refunds older than ``lockTime``; their sum is paid back.

        Waiting refunds move to the front (renumbered); slots past the valid
        range keep their stale values, as the contract never shrinks the array.
        """
        account = self.account(user, provider)
        now = chain.now()
        refunds = list(account.refunds)
        matured = 0
        waiting = 0
        kept = 0
        for position in range(account.valid_refunds_length):
            refund = refunds[position]
            if now >= refund.created_at + self.lock_time:
                matured += refund.amount
                continue
            waiting += refund.amount
            if position != kept:
                refunds[kept] = replace(refund, index=kept)
            kept += 1
        if account.valid_refunds_length:
            updated = replace(
                account,
                balance=account.balance - matured,
                pending_refund=waiting,
                refunds=tuple(refunds),
                valid_refunds_length=kept,
            )
            self._store(updated)
            if matured:
                self._balance_updated(updated)
        return matured

    def request_refund_all(self, chain: ChainContext, user: str, provider: str) -> None:
        """``requestRefundAll``: one new refund of everything not already requested.

        Then ``RefundRequested`` names the newest valid refund, whenever there
        is one, even when nothing new was requested (as the official contract does).
        """
        self._request_refund_all(chain, user, provider)
        account = self.account(user, provider)
        if account.valid_refunds_length:
            index = account.valid_refunds_length - 1
            self.logs.append(
                Log(
                    self.address,
                    [
                        REFUND_REQUESTED_TOPIC,
                        _word(account.user),
                        _word(account.provider),
                        _word(index),
                    ],
                    _word(chain.now()),
                )
            )

    def _request_refund_all(self, chain: ChainContext, user: str, provider: str) -> None:
        account = self.account(user, provider)
        amount = account.balance - account.pending_refund
        if amount == 0:
            return
        valid = account.valid_refunds_length
        if valid >= MAX_REFUNDS_PER_ACCOUNT:
            raise _revert(INFERENCE_SERVING.error("TooManyRefunds"), account.user, account.provider)
        refunds = list(account.refunds)
        request = Refund(valid, amount, chain.now(), False)
        if len(refunds) <= valid:
            refunds.append(request)
        else:
            refunds[valid] = request
        self._store(
            replace(
                account,
                pending_refund=account.pending_refund + amount,
                refunds=tuple(refunds),
                valid_refunds_length=valid + 1,
            )
        )

    def delete_account(self, user: str, provider: str) -> None:
        """``deleteAccount``: gone from every view; nonce and generation are remembered."""
        account = self.accounts.pop((_key(user), _key(provider)), None)
        if account is not None:
            self.retired[(_key(user), _key(provider))] = (account.nonce, account.generation)
            self._emit(ACCOUNT_DELETED_TOPIC, account, _word(account.balance))

    # -- ABI --------------------------------------------------------------------

    def _view(self, function: AbiFunction, args: tuple[Any, ...]) -> bytes | None:
        """The result of a view function; None when ``function`` is not one."""
        if function.name == "getAllServices":
            offset, limit = args
            if limit > MAX_PAGE_SIZE:
                raise _revert(INFERENCE_SERVING.error("LimitTooLarge"), limit, MAX_PAGE_SIZE)
            services = list(self.services.values())
            page = services[offset : offset + (limit or MAX_PAGE_SIZE)]
            return function.encode_output([s.to_abi() for s in page], len(services))
        if function.name == "getService":
            service = self.services.get(_key(args[0]))
            if service is None:
                raise _revert(INFERENCE_SERVING.error("ServiceNotExist"), checksum_address(args[0]))
            return function.encode_output(service.to_abi())
        if function.name == "serviceExists":
            return function.encode_output(_key(args[0]) in self.services)
        if function.name == "lockTime":
            return function.encode_output(self.lock_time)
        if function.name == "getAccount":
            return function.encode_output(self.account(args[0], args[1]).to_abi())
        if function.name in ACCOUNT_LISTINGS:
            *who, offset, limit = args
            if limit > MAX_PAGE_SIZE:
                raise _revert(INFERENCE_SERVING.error("LimitTooLarge"), limit, MAX_PAGE_SIZE)
            side = ACCOUNT_LISTINGS[function.name]
            listed = [
                a for key, a in self.accounts.items() if side is None or key[side] == _key(who[0])
            ]
            rows = listed[offset : offset + (limit or MAX_PAGE_SIZE)]
            return function.encode_output([a.to_abi() for a in rows], len(listed))
        if function.name == "accountExists":
            return function.encode_output(self.account_exists(args[0], args[1]))
        if function.name == "getPendingRefund":
            return function.encode_output(self.account(args[0], args[1]).pending_refund)
        return None

    def call(self, chain: ChainContext, sender: str, data: bytes, value: int) -> bytes:
        if data[:4] != DEVNET_REGISTER_SERVICES.selector:
            result = self._view(*_decode(INFERENCE_SERVING, data))
            if result is not None:
                return result
        self.transact(chain, sender, data, value)
        return b""

    def transact(self, chain: ChainContext, sender: str, data: bytes, value: int) -> list[Log]:
        if data[:4] == DEVNET_REGISTER_SERVICES.selector:
            try:
                (count,) = DEVNET_REGISTER_SERVICES.decode_input(data)
            except Exception:  # eth_abi raises several types for malformed calldata
                raise Revert(b"", "execution reverted: malformed calldata") from None
            self._register_synthetic(chain, sender, count)
            return []
        function, args = _decode(INFERENCE_SERVING, data)
        self.take_logs()
        if self._view(function, args) is not None:
            return []
        if value:
            raise Revert(b"", f"execution reverted: {function.name} is not payable")
        if function.name == "acknowledgeTEESigner":
            provider, acknowledged = args
            account = self.account(sender, provider)
            if account.acknowledged and not acknowledged and account.balance != 0:
                raise _revert(
                    INFERENCE_SERVING.error("CannotRevokeWithNonZeroBalance"),
                    account.user,
                    account.provider,
                    account.balance,
                )
            self._store(replace(account, acknowledged=bool(acknowledged)))
        elif function.name in ("revokeToken", "revokeTokens"):
            provider = args[0]
            ids = args[1] if function.name == "revokeTokens" else [args[1]]
            account = self.account(sender, provider)
            bitmap = account.revoked_bitmap
            for token_id in ids:
                bitmap |= 1 << token_id
            self._store(replace(account, revoked_bitmap=bitmap))
            if function.name == "revokeToken":
                self._emit(TOKEN_REVOKED_TOPIC, account, _word(ids[0]))
            else:
                self._emit(TOKENS_REVOKED_TOPIC, account, _encode_uint8_array(ids))
        elif function.name == "revokeAllTokens":
            account = self.account(sender, args[0])
            generation = account.generation + 1
            self._store(replace(account, generation=generation, revoked_bitmap=0))
            self._emit(ALL_TOKENS_REVOKED_TOPIC, account, _word(generation))
        else:
            raise Revert(b"", f"execution reverted: {function.name} is not implemented")
        return self.take_logs()

    def _register_synthetic(self, chain: ChainContext, sender: str, count: int) -> None:
        if _key(sender) != _key(DEV_ACCOUNT_ADDRESS):
            raise _require("only the devnet owner may register synthetic services")
        if count > MAX_SYNTHETIC_PER_CALL:
            raise _require(f"at most {MAX_SYNTHETIC_PER_CALL} synthetic services per call")
        for _ in range(count):
            number = self.synthetic_services
            self.synthetic_services += 1
            address = "0x" + keccak256(f"zerog-devnet-service-{number}".encode())[12:].hex()
            self.add_service(
                Service(
                    provider=checksum_address(address),
                    service_type="chatbot",
                    url=f"http://127.0.0.1:9/synthetic/{number}",
                    input_price=2 * INPUT_PRICE,
                    output_price=2 * OUTPUT_PRICE,
                    updated_at=chain.now(),
                    model=f"devnet-synthetic-{number}",
                    verifiability="TeeML",
                    additional_info=SERVICE_ADDITIONAL_INFO,
                    tee_signer_address=TEE_SIGNER_ADDRESS,
                    tee_signer_acknowledged=True,
                )
            )


class LedgerManagerContract(Contract):
    """Per-wallet ledgers; holds the 0G of each ledger not moved to a sub-account."""

    name = "LedgerManager"

    def __init__(
        self,
        address: str = LEDGER_MANAGER_ADDRESS,
        inference: InferenceServingContract | None = None,
    ) -> None:
        super().__init__(address)
        self.inference = inference or InferenceServingContract()
        self.ledgers: dict[str, Ledger] = {}
        self.providers: dict[str, list[str]] = {}

    def export_state(self) -> Any:
        return {
            "ledgers": [list(ledger.to_abi()) for ledger in self.ledgers.values()],
            "providers": self.providers,
        }

    def import_state(self, state: Any) -> None:
        ledgers = [Ledger.from_abi(values) for values in state["ledgers"]]
        self.ledgers = {_key(ledger.user): ledger for ledger in ledgers}
        self.providers = {user: list(providers) for user, providers in state["providers"].items()}

    def ledger(self, user: str) -> Ledger:
        ledger = self.ledgers.get(_key(user))
        if ledger is None:
            raise _revert(LEDGER_MANAGER.error("LedgerNotExists"), checksum_address(user))
        return ledger

    def _deposit(self, user: str, value: int, info: str = "") -> None:
        if value == 0:
            raise _revert(LEDGER_MANAGER.error("ZeroAmountNotAllowed"))
        existing = self.ledgers.get(_key(user))
        if existing is None:
            if value < MIN_ACCOUNT_BALANCE:
                raise _revert(
                    LEDGER_MANAGER.error("MinimumDepositRequired"), value, MIN_ACCOUNT_BALANCE
                )
            self.ledgers[_key(user)] = Ledger(checksum_address(user), value, value, info)
            return
        self.ledgers[_key(user)] = replace(
            existing,
            available_balance=existing.available_balance + value,
            total_balance=existing.total_balance + value,
        )

    def _add_ledger(self, user: str, value: int, info: str) -> None:
        if value < MIN_ACCOUNT_BALANCE:
            raise _revert(
                LEDGER_MANAGER.error("MinimumDepositRequired"), value, MIN_ACCOUNT_BALANCE
            )
        if len(info.encode("utf-8")) > MAX_ADDITIONAL_INFO_LENGTH:
            raise _revert(
                LEDGER_MANAGER.error("AdditionalInfoTooLong"),
                len(info.encode("utf-8")),
                MAX_ADDITIONAL_INFO_LENGTH,
            )
        if _key(user) in self.ledgers:
            raise _revert(LEDGER_MANAGER.error("LedgerExists"), checksum_address(user))
        self._deposit(user, value, info)

    def _check_service_name(self, name: str) -> None:
        if name != SERVICE_NAME:
            raise _revert(LEDGER_MANAGER.error("ServiceNotFound"), ZERO_ADDRESS)

    def _view(self, function: AbiFunction, args: tuple[Any, ...]) -> bytes | None:
        """The result of a view function; None when ``function`` is not one."""
        if function.name == "getLedger":
            return function.encode_output(self.ledger(args[0]).to_abi())
        if function.name == "getAllLedgers":
            offset, limit = args
            ledgers = list(self.ledgers.values())
            page = ledgers[offset : offset + (limit or MAX_PAGE_SIZE)]
            return function.encode_output([ledger.to_abi() for ledger in page], len(ledgers))
        if function.name == "getLedgerProviders":
            user, name = args
            self._check_service_name(name)
            return function.encode_output(self.providers.get(_key(user), []))
        if function.name == "getServiceInfo":
            if _key(args[0]) != self.inference.address:
                return function.encode_output(EMPTY_SERVICE_INFO.to_abi())
            return function.encode_output(self.service_info().to_abi())
        if function.name == "getServiceAddressByName":
            found = args[0] == SERVICE_NAME
            return function.encode_output(self.inference.address if found else ZERO_ADDRESS)
        return None

    def call(self, chain: ChainContext, sender: str, data: bytes, value: int) -> bytes:
        function, args = _decode(LEDGER_MANAGER, data)
        result = self._view(function, args)
        if result is not None:
            return result
        self.transact(chain, sender, data, value)
        if function.name == "addLedger":
            return function.encode_output(value, 0)
        return b""

    def service_info(self) -> ServiceInfo:
        address = checksum_address(self.inference.address)
        return ServiceInfo(
            service_address=address,
            service_contract=address,
            service_type=SERVICE_TYPE,
            version=SERVICE_VERSION,
            full_name=SERVICE_NAME,
            description="0G inference serving (devnet)",
            is_recommended=True,
            registered_at=0,
        )

    def transact(self, chain: ChainContext, sender: str, data: bytes, value: int) -> list[Log]:
        function, args = _decode(LEDGER_MANAGER, data)
        self.inference.take_logs()
        if self._view(function, args) is not None:
            return []
        if value and function.name not in _PAYABLE:
            raise Revert(b"", f"execution reverted: {function.name} is not payable")
        if function.name == "addLedger":
            self._add_ledger(sender, value, args[0])
        elif function.name == "depositFund":
            self._deposit(sender, value)
        elif function.name == "depositFundFor":
            if _key(args[0]) == ZERO_ADDRESS:
                raise _revert(LEDGER_MANAGER.error("ZeroAddressNotAllowed"))
            self._deposit(args[0], value)
        elif function.name == "transferFund":
            self._transfer(chain, sender, *args)
        elif function.name == "retrieveFund":
            self._retrieve(chain, sender, *args)
        elif function.name == "refund":
            self._refund(chain, sender, args[0])
        elif function.name == "deleteLedger":
            self._delete(sender)
        else:
            raise Revert(b"", f"execution reverted: {function.name} is not implemented")
        return self.inference.take_logs()

    def _transfer(
        self, chain: ChainContext | None, user: str, provider: str, name: str, amount: int
    ) -> None:
        """Ledger → sub-account; an existing one first cancels pending refunds.

        Only what the cancelled refunds do not cover leaves the ledger's
        available balance; the 0G moves to the InferenceServing contract.
        ``chain`` is None only while seeding the genesis state.
        """
        ledger = self.ledger(user)
        self._check_service_name(name)
        inference = self.inference
        if inference.account_exists(user, provider):
            cancel = min(amount, inference.account(user, provider).pending_refund)
            moved = amount - cancel

            def settle() -> None:
                inference.deposit(user, provider, cancel, moved)

        else:
            if amount < MIN_TRANSFER_AMOUNT:
                raise _revert(
                    LEDGER_MANAGER.error("MinimumDepositRequired"), amount, MIN_TRANSFER_AMOUNT
                )
            providers = self.providers.setdefault(_key(user), [])
            if checksum_address(provider) not in providers:
                if len(providers) >= MAX_PROVIDERS_PER_USER:
                    raise _revert(
                        LEDGER_MANAGER.error("TooManyProvidersForService"),
                        len(providers),
                        MAX_PROVIDERS_PER_USER,
                    )
                providers.append(checksum_address(provider))
            moved = amount

            def settle() -> None:
                inference.add_account(user, provider, amount, ledger.additional_info)

        if ledger.available_balance < moved:
            raise _revert(
                LEDGER_MANAGER.error("InsufficientAvailableBalance"),
                ledger.available_balance,
                moved,
            )
        self.ledgers[_key(user)] = replace(
            ledger, available_balance=ledger.available_balance - moved
        )
        try:
            settle()
        except Revert:
            # The official contract calls the serving contract with a low-level
            # call and replaces whatever it reverted with by its own error.
            raise _revert(LEDGER_MANAGER.error("CallFailed")) from None
        if chain is not None:
            chain.transfer(self.address, inference.address, moved)

    def _retrieve(self, chain: ChainContext, user: str, providers: list[str], name: str) -> None:
        """For each provider with a sub-account: take back matured refunds, request the rest."""
        if len(providers) > MAX_PROVIDERS_PER_RETRIEVE:
            raise _revert(
                LEDGER_MANAGER.error("TooManyProviders"),
                len(providers),
                MAX_PROVIDERS_PER_RETRIEVE,
            )
        self._check_service_name(name)
        ledger = self.ledger(user)
        returned = 0
        for provider in providers:
            if self.inference.account_exists(user, provider):
                returned += self.inference.process_refund(chain, user, provider)
                self.inference.request_refund_all(chain, user, provider)
        chain.transfer(self.inference.address, self.address, returned)
        self.ledgers[_key(user)] = replace(
            ledger, available_balance=ledger.available_balance + returned
        )

    def _refund(self, chain: ChainContext, user: str, amount: int) -> None:
        """Available balance → wallet; what stays available is 0 or at least 3 0G.

        A ledger whose total reaches 0 is deleted with its sub-accounts.
        """
        ledger = self.ledger(user)
        if ledger.available_balance < amount:
            raise _revert(LEDGER_MANAGER.error("InsufficientBalance"), checksum_address(user))
        remaining = ledger.available_balance - amount
        if 0 < remaining < MIN_ACCOUNT_BALANCE:
            raise _revert(
                LEDGER_MANAGER.error("MinimumDepositRequired"), remaining, MIN_ACCOUNT_BALANCE
            )
        total = ledger.total_balance - amount
        if total == 0:
            self._remove(user)
        else:
            self.ledgers[_key(user)] = replace(
                ledger, available_balance=remaining, total_balance=total
            )
        chain.transfer(self.address, user, amount)

    def _delete(self, user: str) -> None:
        ledger = self.ledger(user)
        if ledger.total_balance != 0:
            raise _revert(LEDGER_MANAGER.error("MustWithdrawAllFundsFirst"), ledger.total_balance)
        self._remove(user)

    def _remove(self, user: str) -> None:
        del self.ledgers[_key(user)]
        for provider in self.providers.pop(_key(user), []):
            self.inference.delete_account(user, provider)


def _seed(ledger: LedgerManagerContract, now: int) -> None:
    """The genesis state described in the module docstring."""
    ledger.inference.add_service(
        Service(
            provider=PROVIDER_ADDRESS,
            service_type="chatbot",
            url="",
            input_price=INPUT_PRICE,
            output_price=OUTPUT_PRICE,
            updated_at=now,
            model=DEVNET_MODEL,
            verifiability="TeeML",
            additional_info=SERVICE_ADDITIONAL_INFO,
            tee_signer_address=TEE_SIGNER_ADDRESS,
            tee_signer_acknowledged=True,
        )
    )
    from zerog_cli.devnet.provider_kinds import EXTRA_KINDS

    for kind in EXTRA_KINDS:
        ledger.inference.add_service(
            Service(
                provider=kind.address,
                service_type="chatbot",
                url="",
                input_price=kind.input_price,
                output_price=kind.output_price,
                updated_at=now,
                model=kind.model,
                verifiability="TeeML",
                additional_info=kind.additional_info,
                tee_signer_address=kind.tee_address,
                tee_signer_acknowledged=True,
            )
        )
    ledger._deposit(DEV_ACCOUNT_ADDRESS, SEED_LEDGER_BALANCE)
    ledger._transfer(
        None, DEV_ACCOUNT_ADDRESS, PROVIDER_ADDRESS, SERVICE_NAME, SEED_SUB_ACCOUNT_BALANCE
    )


def register_contracts(chain: Chain) -> None:
    """The devnet hook: install both contracts with their genesis state.

    On a fresh data folder the seeded state stands and both contracts get the
    seeded 0G as genesis balance; on a restart the chain replaces
    the state with the persisted one.
    """
    inference = InferenceServingContract()
    ledger = LedgerManagerContract(inference=inference)
    _seed(ledger, chain.now())
    balances = chain.config.genesis_balances
    seeded = {
        LEDGER_MANAGER_ADDRESS: SEED_LEDGER_BALANCE - SEED_SUB_ACCOUNT_BALANCE,
        INFERENCE_SERVING_ADDRESS: SEED_SUB_ACCOUNT_BALANCE,
    }
    for address, amount in seeded.items():
        balances[address] = balances.get(address, 0) + amount
    chain.register_contract(inference)
    chain.register_contract(ledger)
