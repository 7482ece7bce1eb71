"""The metrics of a run that exports none: every update accepted, nothing kept.

A command run without a metrics file or a Pushgateway never reads its
registry, yet building it meant importing prometheus_client (about 45 ms of
CPU, a sixth of a download's start-up) and updating a counter and a histogram
on every HTTP attempt. `Context.metrics` hands such a run this stand-in, which
answers every metric of `infra.metrics.Metrics` (``labels``, ``inc``, ``dec``,
``set``, ``observe``) and ``finish_run`` with nothing.
"""

from __future__ import annotations


class _Discarded:
    """A metric whose updates go nowhere (``labels`` returns the same metric)."""

    def labels(self, *values: object, **named: object) -> _Discarded:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, value: float) -> None:
        pass


_DISCARDED = _Discarded()


class UnexportedMetrics:
    """Stands in for `infra.metrics.Metrics` when the run exports no metrics."""

    def __getattr__(self, name: str) -> _Discarded:
        if name.startswith("_"):
            raise AttributeError(name)
        return _DISCARDED

    def finish_run(self, command: str, exit_code: int, seconds: float) -> None:
        pass
