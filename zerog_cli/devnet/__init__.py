"""A local 0G-compatible network on 127.0.0.1 for tests, demos and runbook rehearsal.

Entry points: `zerog_cli.devnet.control` (start in the foreground or detached,
status, stop; used by ``zerog devnet``), `zerog_cli.devnet.network.Devnet`
(an in-process devnet) and ``python -m zerog_cli.devnet``. The wire behaviour
follows specs/0g-interop.md and specs/0g-storage.md; the official TS SDK 1.2.8
is run against it in tests/test_interop_ts_sdk.py.
"""
