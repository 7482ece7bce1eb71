"""HTTP basic authentication for `zerog metrics serve`, from a Prometheus-style web config file.

The file has the shape of the ``basic_auth_users`` section of Prometheus'
``web.config.file``: a user name and a password hash per line.

    basic_auth_users:
      prometheus: $2y$10$…          # bcrypt, as `htpasswd -nBC 10 "" | tr -d ':\\n'` prints
      grafana: sha256:5e88…8d       # sha256: and the password's SHA-256 in hex

Only that section is read (zerog serves no TLS; anything else in the file is
refused rather than ignored). Hashes are checked with bcrypt (imported only
when a bcrypt user signs in) or in constant time for sha256.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from pathlib import Path

from zerog_cli.errors import UsageError

_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
_SHA256_PREFIX = "sha256:"


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _valid_hash(value: str) -> bool:
    if value.startswith(_BCRYPT_PREFIXES):
        return len(value) == 60
    if value.startswith(_SHA256_PREFIX):
        digest = value[len(_SHA256_PREFIX) :]
        return len(digest) == 64 and all(c in "0123456789abcdefABCDEF" for c in digest)
    return False


def load_users(path: Path) -> dict[str, str]:
    """User name → password hash from ``path``; UsageError naming the line when malformed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no such basic auth file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read basic auth file {path}: {exc}") from None
    users: dict[str, str] = {}
    in_section = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            if line.strip() != "basic_auth_users:":
                raise UsageError(
                    f"{path}:{number}: only a basic_auth_users: section is supported here"
                )
            in_section = True
            continue
        name, colon, value = line.strip().partition(":")
        name, value = _unquote(name.strip()), _unquote(value.split(" #", 1)[0].strip())
        if not in_section or not colon or not name:
            raise UsageError(f"{path}:{number}: expected `  USER: HASH` under basic_auth_users:")
        if not _valid_hash(value):
            raise UsageError(
                f"{path}:{number}: the hash of user {name!r} is neither bcrypt ($2y$…) "
                "nor sha256:HEX"
            )
        users[name] = value
    if not users:
        raise UsageError(f"{path} names no user under basic_auth_users:")
    return users


def _password_matches(stored: str, password: str) -> bool:
    if stored.startswith(_SHA256_PREFIX):
        digest = hashlib.sha256(password.encode("utf-8")).hexdigest()
        return hmac.compare_digest(digest, stored[len(_SHA256_PREFIX) :].lower())
    import bcrypt

    try:
        return bool(bcrypt.checkpw(password.encode("utf-8"), stored.encode("ascii")))
    except ValueError:
        return False


def authorised(users: dict[str, str], header: str | None) -> bool:
    """Whether an ``Authorization`` header names a user of ``users`` with the right password."""
    if not header or not header.startswith("Basic "):
        return False
    try:
        decoded = base64.b64decode(header[len("Basic ") :], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user, colon, password = decoded.partition(":")
    stored = users.get(user)
    if not colon or stored is None:
        return False
    return _password_matches(stored, password)
