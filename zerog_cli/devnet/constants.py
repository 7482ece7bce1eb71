"""Fixed values of the devnet: the dev account, contract addresses, defaults.

The dev account is Hardhat's well-known account #0. Its key is public: it
exists so that a new user (and every test) can pay for uploads on the devnet
without a wallet. Never use it on a real network.

Contract addresses are the ones Hardhat gives to the first contracts that
account #0 deploys (CREATE addresses for nonces 0, 1, 2, 6 and 12), so the
compute addresses match the "local hardhat" row of specs/0g-compute.md 1.1.
"""

from __future__ import annotations

DEV_ACCOUNT_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
DEV_ACCOUNT_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_ACCOUNT_BALANCE = 10_000 * 10**18

FLOW_ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
MARKET_ADDRESS = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
LEDGER_MANAGER_ADDRESS = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"
INFERENCE_SERVING_ADDRESS = "0x0165878A594ca255338adfa4d48449f69242Eb8F"

LOOPBACK_HOST = "127.0.0.1"
ALLOWED_HOSTS = ("127.0.0.1", "localhost")
DEFAULT_PORT = 8545
DEFAULT_CHAIN_ID = 31337
DEFAULT_NODES = 2

# Fee market: every block has this base fee; eth_gasPrice = base fee + tip.
BASE_FEE_PER_GAS = 1_000_000_000
PRIORITY_FEE_PER_GAS = 1_000_000_000
BLOCK_GAS_LIMIT = 30_000_000

# Market price: 1 gwei per 256-byte sector (about 0.004 0G per GiB).
DEFAULT_PRICE_PER_SECTOR = 1_000_000_000

# Route prefixes on the devnet's single HTTP port.
INDEXER_PREFIX = "/indexer"
NODE_PREFIX = "/node"
PROVIDER_PREFIX = "/provider"
ROUTER_PREFIX = "/router"
ADMIN_PREFIX = "/admin"

# What a storage node accepts per JSON-RPC body (the real node's default).
MAX_REQUEST_BYTES = 100 * 1024 * 1024
