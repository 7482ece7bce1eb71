"""Scrub secret values from any text before it leaves the process.

Every secret the process reads is registered here (by `infra.secrets`), the
known secrets set in the environment are masked whether read or not, and the
CLI's error printer, log handler and ``--verbose`` traceback pass their text
through `scrub`. Hex keys are registered in the spellings they are
likely to be printed in (with and without ``0x``, either case).

URLs carry credentials too (``https://host/v2/KEY``, ``?apikey=``,
``https://user:pass@host``) and are never secrets of their own: `redact_url`
masks them, and every printer of a URL uses it, as does `scrub` for every URL
in any text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from urllib.parse import urlsplit

_MIN_LENGTH = 6
_registered: set[str] = set()

MASK = "***"


def _variants(value: str) -> set[str]:
    variants = {value}
    stripped = value.strip()
    body = stripped[2:] if stripped.lower().startswith("0x") else stripped
    if body and all(c in "0123456789abcdefABCDEF" for c in body):
        for text in (body.lower(), body.upper()):
            variants.update({text, "0x" + text})
    variants.add(stripped)
    return {v for v in variants if len(v) >= _MIN_LENGTH}


def register(value: str) -> None:
    """Remember ``value`` (and its hex spellings) as something never to print."""
    _registered.update(_variants(value))


def _in_environment() -> set[str]:
    """Spellings of the known secrets set in the environment, looked up or not.

    A traceback or a library's message can quote anything the process can
    see, so a secret is masked even in a run that never asked for it.
    """
    from zerog_cli.infra.secrets import KNOWN_SECRETS

    found: set[str] = set()
    for name in KNOWN_SECRETS:
        value = os.environ.get(name)
        if value:
            found |= _variants(value)
    return found


def scrub(text: str) -> str:
    """``text`` with every registered secret, and every URL's credentials, replaced by ``***``."""
    return scrubber()(text)


def scrubber() -> Callable[[str], str]:
    """`scrub` with the secrets known now looked up once: for many short texts printed
    together (a table's cells: reading the environment for each cost 90 % of a table)."""
    secrets = sorted(_registered | _in_environment(), key=len, reverse=True)

    def scrub_text(text: str) -> str:
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return redact_urls(text)

    return scrub_text


# A query parameter whose name says it holds a credential (apikey, access_token, X-Goog-Signature…).
_CREDENTIAL_PARAMETER = re.compile(
    r"key|token|secret|passw|pwd|auth|credential|signature|^sig$", re.IGNORECASE
)
# Path segments that look like API keys: long, URL-safe, letters and digits mixed.
_KEY_LIKE = re.compile(r"[A-Za-z0-9_-]{16,}")
# A URL in running text: it stops at white space and quotes, and does not take
# the punctuation that ends a clause ("cannot reach https://host/v3/KEY: refused").
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>`\\]*[^\s\"'<>`\\.,;:!?)\]}]")


def _key_like(segment: str) -> bool:
    return (
        _KEY_LIKE.fullmatch(segment) is not None
        and any(c.isalpha() for c in segment)
        and any(c.isdigit() for c in segment)
    )


def _redact_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        secret = equals and value and _CREDENTIAL_PARAMETER.search(name)
        pairs.append(f"{name}={MASK}" if secret else pair)
    return "&".join(pairs)


def redact_url(url: str) -> str:
    """``url`` with its credentials masked: user info, query parameters named like
    key/token/secret/password, and path segments that look like API keys
    (16 or more of ``[A-Za-z0-9_-]``, letters and digits mixed).

    Text that is not an absolute URL with a host comes back unchanged.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rpartition("@")[2]
    path = "/".join(MASK if _key_like(segment) else segment for segment in parts.path.split("/"))
    query = _redact_query(parts.query) if parts.query else ""
    if (netloc, path, query) == (parts.netloc, parts.path, parts.query):
        return url
    redacted = f"{parts.scheme}://{netloc}{path}"
    if query:
        redacted += "?" + query
    if parts.fragment:
        redacted += "#" + parts.fragment
    return redacted


def redact_urls(text: str) -> str:
    """``text`` with `redact_url` applied to every URL in it."""
    if "://" not in text:
        return text
    return _URL.sub(lambda match: redact_url(match.group(0)), text)
