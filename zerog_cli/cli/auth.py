"""`zerog auth address|sign|verify|sign-typed` with the configured wallet key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zerog_cli.cli.common import command, examples, new_app, state

app = new_app(
    "Show the wallet address, sign and verify messages (EIP-191, EIP-712).",
    "zerog auth address",
    'zerog auth sign "hello"',
)

Purpose = Annotated[str, typer.Option("--key", help="Which wallet key: storage or compute.")]


@command(
    app, "address", epilog=examples("zerog auth address", "zerog auth address --key compute --json")
)
def address(key: Purpose = "storage") -> None:
    """Print the address of the wallet key (never the key)."""
    from zerog_cli.services import auth

    report = auth.address(state().context, key)
    state().output.result(report, report["address"])


@command(app, "sign", epilog=examples('zerog auth sign "deploy 2026-11-26 nonce=42"'))
def sign(
    message: Annotated[str, typer.Argument(help="Text to sign.")], key: Purpose = "storage"
) -> None:
    """Sign a message with EIP-191 personal_sign; prints the signature."""
    from zerog_cli.services import auth

    report = auth.sign(state().context, message, key)
    state().output.result(report, report["signature"])


@command(
    app,
    "verify",
    epilog=examples(
        'zerog auth verify "deploy nonce=42" 0x5f…1b --address 0xf39F…2266',
        'zerog auth verify "deploy nonce=42" 0x5f…1b --nonce 42 --scope deploys',
    ),
)
def verify(
    message: Annotated[str, typer.Argument(help="The signed text.")],
    signature: Annotated[str, typer.Argument(help="0x-hex 65-byte signature.")],
    expected: Annotated[
        str | None,
        typer.Option(
            "--address", help="Require this signer (exit 5 otherwise).", show_default=False
        ),
    ] = None,
    nonce: Annotated[
        str | None,
        typer.Option("--nonce", help="Refuse a replay of this nonce (exit 5).", show_default=False),
    ] = None,
    scope: Annotated[
        str | None, typer.Option("--scope", help="Namespace of the nonce.", show_default=False)
    ] = None,
) -> None:
    """Recover the signer of a message; optionally require an address and a fresh nonce."""
    from zerog_cli.services import auth

    report = auth.verify(
        state().context, message, signature, expected_address=expected, nonce=nonce, scope=scope
    )
    state().output.result(report, f"valid signature by {report['signer']}")


@command(app, "sign-typed", epilog=examples("zerog auth sign-typed order.json"))
def sign_typed(
    path: Annotated[
        Path, typer.Argument(help="EIP-712 JSON: types, primaryType, domain, message.")
    ],
    key: Purpose = "storage",
) -> None:
    """Sign EIP-712 typed data from a JSON file."""
    from zerog_cli.services import auth

    report = auth.sign_typed(state().context, path, key)
    state().output.result(report, report["signature"])
