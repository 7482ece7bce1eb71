"""The devnet's 0G compute contracts: LedgerManager and InferenceServing.

Python stand-ins at the "local hardhat" addresses of specs/0g-compute.md 1.1,
speaking the real ABI (`zerog_cli.zerog.compute_abi`, shared with the client)
and reverting with the real custom errors. Rules follow spec section 2:

- ``depositFund`` / ``depositFundFor`` / ``addLedger`` create a ledger with at
  least 3 0G (``MinimumDepositRequired``); later deposits add any amount.
- ``transferFund(provider, "inference-v2.0", amount)`` moves funds from the
  ledger's available balance to the (user, provider) sub-account; the first
  transfer (at least 1 0G) creates it already acknowledged; a pending refund is
  cancelled first and only the rest comes from the ledger.
- ``retrieveFund`` pays matured refunds (older than ``lockTime``, 24 h; the
  chain's ``evm_increaseTime`` moves the clock) back to the ledger, then
  requests a refund of everything left. ``refund`` pays the ledger's available
  balance out to the wallet and must leave 0 (the ledger and its sub-accounts
  are deleted) or at least 3 0G.
- ``revokeToken`` sets a bit of ``revokedBitmap``; ``revokeAllTokens`` bumps
  ``generation`` and clears the bitmap; ``acknowledgeTEESigner`` toggles a
  sub-account's acknowledgement (withdrawing it needs a zero balance).

Native 0G stays in the LedgerManager contract: deposits are paid to it and
refunds are paid from it; sub-accounts are bookkeeping. The provider broker
never settles fees on chain here (see `zerog_cli.devnet.provider`).

Genesis state (a fresh data folder): one acknowledged TeeML chatbot service by
Hardhat account #1 (TEE signer Hardhat #2, model ``devnet-echo-1``, the
conformance vectors' prices, URL set to the devnet's ``/provider`` at each
start), one more service for each other kind of broker in
`zerog_cli.devnet.provider_kinds` (format B, rewriting, delayed signature,
multi-model; no sub-accounts at them), and the dev account (Hardhat #0) with
a 100 0G ledger of which 10 0G are in an acknowledged sub-account at the
seeded provider, so inference works out of the box. Hardhat #3
(`UNFUNDED_ACCOUNT_ADDRESS`) has no ledger and no sub-account. The seeded
ledger's 0G is added to the LedgerManager's genesis balance.

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
from zerog_cli.zerog.compute_abi import (
    ERROR_STRING,
    INFERENCE_SERVING,
    LEDGER_MANAGER,
    MAX_PAGE_SIZE,
    AbiError,
    AbiFunction,
    ContractAbi,
    Ledger,
    Refund,
    Service,
    ServiceInfo,
    SubAccount,
    checksum_address,
    keccak256,
)
from zerog_cli.zerog.compute_fees import MIN_ACCOUNT_BALANCE, MIN_TRANSFER_AMOUNT, NEURON_PER_0G

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
MAX_REFUNDS = 30
MAX_SYNTHETIC_PER_CALL = 500
ZERO_ADDRESS = "0x" + "00" * 20
_PAYABLE = frozenset({"addLedger", "depositFund", "depositFundFor"})

DEVNET_REGISTER_SERVICES = AbiFunction("devnetRegisterServices", ["uint256"])
"""Devnet-only, owner-only: register synthetic services (not part of the real ABI)."""


def _key(address: str) -> str:
    return address.lower()


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
    """Services and (user, provider) sub-accounts."""

    name = "InferenceServing"

    def __init__(self, address: str = INFERENCE_SERVING_ADDRESS) -> None:
        super().__init__(address)
        self.services: dict[str, Service] = {}
        self.accounts: dict[tuple[str, str], SubAccount] = {}
        self.lock_time = LOCK_TIME
        self.synthetic_services = 0

    # -- state ----------------------------------------------------------------

    def export_state(self) -> Any:
        return {
            "services": [list(s.to_abi()) for s in self.services.values()],
            "accounts": [list(a.to_abi()) for a in self.accounts.values()],
            "lockTime": self.lock_time,
            "syntheticServices": self.synthetic_services,
        }

    def import_state(self, state: Any) -> None:
        services = [Service.from_abi(values) for values in state["services"]]
        accounts = [SubAccount.from_abi(values) for values in state["accounts"]]
        self.services = {_key(s.provider): s for s in services}
        self.accounts = {(_key(a.user), _key(a.provider)): a for a in accounts}
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

    def _store(self, account: SubAccount) -> None:
        self.accounts[(_key(account.user), _key(account.provider))] = account

    # -- calls from LedgerManager ---------------------------------------------

    def credit(self, user: str, provider: str, amount: int) -> int:
        """Add ``amount`` to a sub-account; returns what the ledger must pay for it.

        A pending refund is cancelled first (newest refunds first), so only the
        rest is new money.
        """
        if _key(provider) not in self.services:
            raise _revert(INFERENCE_SERVING.error("ServiceNotExist"), checksum_address(provider))
        existing = self.accounts.get((_key(user), _key(provider)))
        if existing is None:
            if amount < MIN_TRANSFER_AMOUNT:
                raise _require("the first transfer to a provider must be at least 1 0G")
            self._store(
                SubAccount(
                    user=checksum_address(user),
                    provider=checksum_address(provider),
                    nonce=0,
                    balance=amount,
                    pending_refund=0,
                    refunds=(),
                    additional_info="",
                    acknowledged=True,
                    valid_refunds_length=0,
                    generation=0,
                    revoked_bitmap=0,
                )
            )
            return amount
        cancel = min(existing.pending_refund, amount)
        refunds = list(existing.refunds)
        to_cancel = cancel
        for position in reversed(range(len(refunds))):
            taken = min(refunds[position].amount, to_cancel)
            refunds[position] = replace(refunds[position], amount=refunds[position].amount - taken)
            to_cancel -= taken
        rest = amount - cancel
        live = _compact(refunds)
        self._store(
            replace(
                existing,
                balance=existing.balance + rest,
                pending_refund=existing.pending_refund - cancel,
                refunds=live,
                valid_refunds_length=len(live),
            )
        )
        return rest

    def retrieve(self, chain: ChainContext, user: str, provider: str) -> int:
        """Pay matured refunds back (returned), then request a refund of the rest."""
        account = self.account(user, provider)
        now = chain.now()
        paid = 0
        waiting: list[Refund] = []
        for refund in account.refunds:
            if refund.created_at + self.lock_time <= now:
                paid += refund.amount
            else:
                waiting.append(refund)
        balance = account.balance - paid
        pending = account.pending_refund - paid
        left = balance - pending
        if left > 0:
            if len(waiting) >= MAX_REFUNDS:
                raise _revert(
                    INFERENCE_SERVING.error("TooManyRefunds"), account.user, account.provider
                )
            waiting.append(Refund(len(waiting), left, now, False))
            pending += left
        refunds = _compact(waiting)
        self._store(
            replace(
                account,
                balance=balance,
                pending_refund=pending,
                refunds=refunds,
                valid_refunds_length=len(refunds),
            )
        )
        return paid

    def delete_accounts(self, user: str) -> None:
        for key in [k for k in self.accounts if k[0] == _key(user)]:
            del self.accounts[key]

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
        if self._view(function, args) is not None:
            return []
        if value:
            raise Revert(b"", f"execution reverted: {function.name} is not payable")
        if function.name == "acknowledgeTEESigner":
            provider, acknowledged = args
            account = self.account(sender, provider)
            if not acknowledged and account.balance != 0:
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
                if token_id == 255:
                    raise _require("the ephemeral token id 255 is revoked with revokeAllTokens")
                bitmap |= 1 << token_id
            self._store(replace(account, revoked_bitmap=bitmap))
        elif function.name == "revokeAllTokens":
            account = self.account(sender, args[0])
            self._store(replace(account, generation=account.generation + 1, revoked_bitmap=0))
        else:
            raise Revert(b"", f"execution reverted: {function.name} is not implemented")
        return []

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


def _compact(refunds: list[Refund]) -> tuple[Refund, ...]:
    """Live refunds only, renumbered (the contract reuses slots; order is kept)."""
    live = [r for r in refunds if r.amount > 0 and not r.processed]
    return tuple(replace(r, index=i) for i, r in enumerate(live))


class LedgerManagerContract(Contract):
    """Per-wallet ledgers; holds the native 0G of every ledger."""

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

    def _check_service_name(self, name: str) -> None:
        if name != SERVICE_NAME:
            raise _revert(LEDGER_MANAGER.error("ServiceNotFound"), ZERO_ADDRESS)

    def _view(self, function: AbiFunction, args: tuple[Any, ...]) -> bytes | None:
        """The result of a view function; None when ``function`` is not one."""
        if function.name == "getLedger":
            return function.encode_output(self.ledger(args[0]).to_abi())
        if function.name == "getLedgerProviders":
            user, name = args
            providers = self.providers.get(_key(user), []) if name == SERVICE_NAME else []
            return function.encode_output(providers)
        if function.name == "getServiceInfo":
            if _key(args[0]) != self.inference.address:
                raise _revert(LEDGER_MANAGER.error("ServiceNotFound"), checksum_address(args[0]))
            return function.encode_output(self.service_info().to_abi())
        return None

    def call(self, chain: ChainContext, sender: str, data: bytes, value: int) -> bytes:
        result = self._view(*_decode(LEDGER_MANAGER, data))
        if result is not None:
            return result
        self.transact(chain, sender, data, value)
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
        if self._view(function, args) is not None:
            return []
        if value and function.name not in _PAYABLE:
            raise Revert(b"", f"execution reverted: {function.name} is not payable")
        if function.name == "addLedger":
            if _key(sender) in self.ledgers:
                raise _require("a ledger already exists for this account; use depositFund")
            self._deposit(sender, value, args[0])
        elif function.name == "depositFund":
            self._deposit(sender, value)
        elif function.name == "depositFundFor":
            self._deposit(args[0], value)
        elif function.name == "transferFund":
            self._transfer(sender, *args)
        elif function.name == "retrieveFund":
            self._retrieve(chain, sender, *args)
        elif function.name == "refund":
            self._refund(chain, sender, args[0])
        else:
            raise Revert(b"", f"execution reverted: {function.name} is not implemented")
        return []

    def _transfer(self, user: str, provider: str, name: str, amount: int) -> None:
        ledger = self.ledger(user)
        self._check_service_name(name)
        from_ledger = self.inference.credit(user, provider, amount)
        if from_ledger > ledger.available_balance:
            raise _revert(
                LEDGER_MANAGER.error("InsufficientAvailableBalance"),
                ledger.available_balance,
                from_ledger,
            )
        providers = self.providers.setdefault(_key(user), [])
        if checksum_address(provider) not in providers:
            if len(providers) >= MAX_PROVIDERS_PER_USER:
                raise _revert(
                    LEDGER_MANAGER.error("TooManyProviders"),
                    len(providers) + 1,
                    MAX_PROVIDERS_PER_USER,
                )
            providers.append(checksum_address(provider))
        self.ledgers[_key(user)] = replace(
            ledger, available_balance=ledger.available_balance - from_ledger
        )

    def _retrieve(self, chain: ChainContext, user: str, providers: list[str], name: str) -> None:
        if len(providers) > MAX_PROVIDERS_PER_RETRIEVE:
            raise _revert(
                LEDGER_MANAGER.error("TooManyProviders"),
                len(providers),
                MAX_PROVIDERS_PER_RETRIEVE,
            )
        ledger = self.ledger(user)
        self._check_service_name(name)
        returned = sum(self.inference.retrieve(chain, user, provider) for provider in providers)
        self.ledgers[_key(user)] = replace(
            ledger, available_balance=ledger.available_balance + returned
        )

    def _refund(self, chain: ChainContext, user: str, amount: int) -> None:
        ledger = self.ledger(user)
        if amount > ledger.available_balance:
            raise _revert(
                LEDGER_MANAGER.error("InsufficientAvailableBalance"),
                ledger.available_balance,
                amount,
            )
        remaining = ledger.total_balance - amount
        if 0 < remaining < MIN_ACCOUNT_BALANCE:
            raise _require("a ledger must keep at least 3 0G or be emptied")
        if remaining == 0:
            del self.ledgers[_key(user)]
            self.providers.pop(_key(user), None)
            self.inference.delete_accounts(user)
        else:
            self.ledgers[_key(user)] = replace(
                ledger,
                available_balance=ledger.available_balance - amount,
                total_balance=remaining,
            )
        chain.transfer(self.address, user, amount)


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
    ledger._transfer(DEV_ACCOUNT_ADDRESS, PROVIDER_ADDRESS, SERVICE_NAME, SEED_SUB_ACCOUNT_BALANCE)


def register_contracts(chain: Chain) -> None:
    """The devnet hook: install both contracts with their genesis state.

    On a fresh data folder the seeded state stands and the LedgerManager gets
    the seeded ledger's 0G as genesis balance; on a restart the chain replaces
    the state with the persisted one.
    """
    inference = InferenceServingContract()
    ledger = LedgerManagerContract(inference=inference)
    _seed(ledger, chain.now())
    balances = chain.config.genesis_balances
    balances[LEDGER_MANAGER_ADDRESS] = balances.get(LEDGER_MANAGER_ADDRESS, 0) + (
        SEED_LEDGER_BALANCE
    )
    chain.register_contract(inference)
    chain.register_contract(ledger)
