"""zerog's loggers write one scrubbed line each to stderr.

Configured when a command runs (not for `--help`, which never logs), so the
logging package is not imported on the fast path.
"""

from __future__ import annotations

import logging
import sys

from zerog_cli.infra import redaction
from zerog_cli.infra.output import terminal_safe


class ScrubbingFormatter(logging.Formatter):
    """Formats as usual, then masks every registered secret and escapes control characters
    (a node's message may carry terminal escape sequences)."""

    def format(self, record: logging.LogRecord) -> str:
        return terminal_safe(redaction.scrub(super().format(record)))


def configure(verbose: bool, quiet: bool = False) -> None:
    """``zerog.*`` loggers to stderr: DEBUG with -v, ERROR with -q, else WARNING.

    ``--quiet`` promises only errors on stderr, so it silences logged warnings
    too (a circuit breaker opening, a node skipped); ``--verbose`` wins when
    both are given.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ScrubbingFormatter("%(levelname)s %(name)s: %(message)s"))
    root_logger = logging.getLogger("zerog")
    root_logger.handlers[:] = [handler]
    if verbose:
        root_logger.setLevel(logging.DEBUG)
    else:
        root_logger.setLevel(logging.ERROR if quiet else logging.WARNING)
    root_logger.propagate = False
