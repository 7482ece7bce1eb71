"""`zerog auth address|sign|verify|sign-typed|verify-typed` with the configured wallet key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zerog_cli.cli.common import command, examples, new_app, results, state
from zerog_cli.infra.choices import KeyPurpose

app = new_app(
    "Show the wallet address, sign and verify messages (EIP-191, EIP-712).",
    "zerog auth address",
    "zerog auth sign $'deploy build 7\\nNonce: 8f3a91c2'",
)

Purpose = Annotated[
    KeyPurpose,
    typer.Option(
        "--key",
        help="Which wallet key: storage, compute or signing (ZEROG_SIGNING_PRIVATE_KEY).",
    ),
]
Expected = Annotated[
    str | None,
    typer.Option("--address", help="Require this signer (exit 5 otherwise).", show_default=False),
]
Nonce = Annotated[
    str | None,
    typer.Option(
        "--nonce",
        help="Require the signed nonce to be exactly this (exit 5 otherwise).",
        show_default=False,
    ),
]
Scope = Annotated[
    str | None,
    typer.Option(
        "--scope",
        help="Consume the signed nonce once in this scope; a replay exits 5.",
        show_default=False,
    ),
]
Signature = Annotated[str, typer.Argument(help="0x-hex 65-byte signature (low s, EIP-2).")]


@command(
    app,
    "address",
    result=results("auth.WalletAddress"),
    epilog=examples("zerog auth address", "zerog auth address --key compute --json"),
)
def address(key: Purpose = KeyPurpose.STORAGE) -> None:
    """Print the address of the wallet key (never the key)."""
    from zerog_cli.services import auth

    report = auth.address(state().context, key)
    state().output.result(report, report.address)


@command(
    app,
    "sign",
    result=results("auth.Signed"),
    epilog=examples(
        "zerog auth sign $'deploy build 7\\nNonce: 8f3a91c2'",
        "zerog auth sign $'deploy build 7\\nNonce: 8f3a91c2' --json",
    ),
)
def sign(
    message: Annotated[
        str, typer.Argument(help="Text to sign; a `Nonce: N` line makes it single-use.")
    ],
    key: Purpose = KeyPurpose.STORAGE,
) -> None:
    """Sign a message with EIP-191 personal_sign; prints the signature.

    To make the signature usable once, put the nonce on a line of its own,
    `Nonce: N` (as in EIP-4361), and verify with `--scope`.
    """
    from zerog_cli.services import auth

    report = auth.sign(state().context, message, key)
    state().output.result(report, report.signature)


@command(
    app,
    "verify",
    result=results("auth.Verified"),
    epilog=examples(
        'zerog auth verify "$MESSAGE" 0x5f…1b --address 0xf39F…2266',
        'zerog auth verify "$MESSAGE" 0x5f…1b --nonce 8f3a91c2 --scope deploys',
    ),
)
def verify(
    message: Annotated[str, typer.Argument(help="The signed text.")],
    signature: Signature,
    expected: Expected = None,
    nonce: Nonce = None,
    scope: Scope = None,
) -> None:
    """Recover the signer of a message; optionally require an address and a fresh nonce.

    The nonce is the message's `Nonce: N` line (exactly one such line), never
    any other text of the message.
    """
    from zerog_cli.services import auth

    report = auth.verify(
        state().context, message, signature, expected_address=expected, nonce=nonce, scope=scope
    )
    state().output.result(report, f"valid signature by {report.signer}")


@command(
    app,
    "sign-typed",
    result=results("auth.TypedSigned"),
    epilog=examples(
        "zerog auth sign-typed order.json",
        "zerog auth sign-typed permit.json --allow-chain-id 1 --json",
    ),
)
def sign_typed(
    path: Annotated[
        Path, typer.Argument(help="EIP-712 JSON: types, primaryType, domain, message.")
    ],
    key: Purpose = KeyPurpose.SIGNING,
    allow_chain_id: Annotated[
        list[int] | None,
        typer.Option(
            "--allow-chain-id",
            help="Also sign for this chain id (repeatable); default: the profile's only.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Sign EIP-712 typed data from a JSON file, for the profile's chain.

    Shows the domain (name, chainId, verifyingContract) and the primary type
    on stderr. The key is ZEROG_SIGNING_PRIVATE_KEY; without it, the storage
    key signs and a warning says so.
    """
    from zerog_cli.services import auth

    current = state()
    report = auth.sign_typed(current.context, path, key, allow_chain_id or ())
    domain = report.domain
    current.output.info(
        f"signing EIP-712 {report.primary_type} for {domain.name!r} "
        f"(chain {domain.chainId}, contract {domain.verifyingContract or 'none'}) "
        f"as {report.address}"
    )
    for warning in report.warnings:
        current.output.warn(warning)
    current.output.result(report, report.signature)


@command(
    app,
    "verify-typed",
    result=results("auth.TypedVerified"),
    epilog=examples(
        "zerog auth verify-typed order.json 0x5f…1b --address 0xf39F…2266",
        "zerog auth verify-typed order.json 0x5f…1b --scope orders --json",
    ),
)
def verify_typed(
    path: Annotated[
        Path, typer.Argument(help="The signed EIP-712 JSON: types, primaryType, domain, message.")
    ],
    signature: Signature,
    expected: Expected = None,
    nonce: Nonce = None,
    scope: Scope = None,
) -> None:
    """Recover the signer of EIP-712 typed data; optionally require an address and a fresh nonce.

    The nonce is the `nonce` field of the message, declared in its primary type.
    """
    from zerog_cli.services import auth

    report = auth.verify_typed(
        state().context, path, signature, expected_address=expected, nonce=nonce, scope=scope
    )
    state().output.result(report, f"valid signature by {report.signer}")
