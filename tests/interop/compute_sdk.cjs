// Drives the official 0G compute SDK (@0gfoundation/0g-compute-ts-sdk 0.9.0) against a devnet.
//
// Usage: node compute_sdk.cjs '<config JSON>'
// Config: {rpc, key, steps: [{op, ...arguments}]}. The steps run in order with one
// broker (createZGComputeNetworkBroker on an ethers Wallet, with the node's
// eth_gasPrice; chain id 31337 makes the SDK pick its "hardhat" contract addresses,
// which are the devnet's):
//   {op: "addLedger", amount}             ledger.addLedger(amount 0G)
//   {op: "depositFund", amount}           ledger.depositFund(amount 0G)
//   {op: "ledger"}                        ledger.getLedger()
//   {op: "transferFund", provider, neuron} ledger.transferFund(provider, "inference", neuron)
//   {op: "acknowledge", provider}         inference.acknowledgeProviderSigner(provider)
//   {op: "account", provider}             inference.getAccountWithDetail(provider)
//   {op: "services"}                      inference.listService()
//   {op: "readOnlyServices", rpc}         the same from createZGComputeNetworkReadOnlyBroker(rpc)
//   {op: "accounts"}                      the broker's AccountProcessor.listAccount()
//                                         (getAllAccounts, first 50; not on the broker itself)
//   {op: "chat", provider, prompt, model?, stream?, retryMs?}
//       getServiceMetadata + getRequestHeaders (which funds a new sub-account itself),
//       POST {endpoint}/chat/completions with those headers, then
//       processResponse(provider, chatID, usage JSON); with retryMs, a failed first
//       processResponse (a signature not there yet) is retried once after that wait
//   {op: "verify", provider, chatID}      processResponse(provider, chatID) alone
//   {op: "retrieveFund", provider?}       ledger.retrieveFundFromProvider or retrieveFund
//   {op: "refund", amount}                ledger.refund(amount 0G)
//
// Prints exactly one JSON line on stdout: {steps: [{op, result} ...]} or {error, steps}.
// The SDK's own console output goes to stderr. BigInts are printed as decimal strings.
"use strict";

const { ethers } = require("ethers");
const {
  createZGComputeNetworkBroker,
  createZGComputeNetworkReadOnlyBroker,
} = require("@0gfoundation/0g-compute-ts-sdk");

for (const level of ["log", "info", "debug", "warn"]) {
  console[level] = (...args) => console.error(...args);
}

const plain = (value) =>
  JSON.parse(JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v)));

function ledgerView(ledger) {
  return { user: ledger.user, availableBalance: ledger.availableBalance, totalBalance: ledger.totalBalance };
}

function accountView([account, refunds]) {
  return {
    balance: account.balance,
    pendingRefund: account.pendingRefund,
    acknowledged: account.acknowledged,
    validRefundsLength: account.validRefundsLength,
    refunds: refunds.map((r) => ({ amount: r.amount, remainTime: r.remainTime })),
  };
}

function serviceViews(services) {
  return services.map((s) => ({
    provider: s.provider,
    model: s.model,
    url: s.url,
    teeSignerAddress: s.teeSignerAddress,
    teeSignerAcknowledged: s.teeSignerAcknowledged,
  }));
}

async function readStream(response) {
  const text = await response.text();
  let usage = null;
  let content = "";
  let id = null;
  for (const line of text.split("\n")) {
    if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
    const chunk = JSON.parse(line.slice(6));
    id = id || chunk.id;
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices || []) content += (choice.delta && choice.delta.content) || "";
  }
  return { id, usage, content };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// processResponse fetches the signature once; a broker that signs late answers
// an error until then, which the SDK throws. With retryMs, wait and ask again.
async function verify(broker, step, chatID, usage) {
  const inference = broker.inference;
  try {
    return { verified: await inference.processResponse(step.provider, chatID, usage), firstError: null };
  } catch (error) {
    if (!step.retryMs) throw error;
    await sleep(step.retryMs);
    const verified = await inference.processResponse(step.provider, chatID, usage);
    return { verified, firstError: String(error.message || error) };
  }
}

async function chat(broker, step) {
  const { endpoint, model } = await broker.inference.getServiceMetadata(step.provider, step.model);
  const headers = await broker.inference.getRequestHeaders(step.provider);
  const body = { model, messages: [{ role: "user", content: step.prompt }] };
  if (step.stream) body.stream = true;
  const response = await fetch(`${endpoint}/chat/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    throw new Error(`chat answered HTTP ${response.status}: ${await response.text()}`);
  }
  const headerKey = response.headers.get("ZG-Res-Key");
  let answer;
  if (step.stream) {
    answer = await readStream(response);
  } else {
    const data = await response.json();
    answer = { id: data.id, usage: data.usage, content: data.choices[0].message.content };
  }
  const chatID = headerKey || answer.id;
  const { verified, firstError } = await verify(broker, step, chatID, JSON.stringify(answer.usage));
  return { endpoint, model, chatID, answer: answer.content, usage: answer.usage, verified, firstError };
}

async function run(broker, step) {
  const ledger = broker.ledger;
  const inference = broker.inference;
  switch (step.op) {
    case "addLedger":
      return ledger.addLedger(step.amount);
    case "depositFund":
      return ledger.depositFund(step.amount);
    case "ledger":
      return ledgerView(await ledger.getLedger());
    case "transferFund":
      return ledger.transferFund(step.provider, "inference", BigInt(step.neuron));
    case "acknowledge":
      await inference.acknowledgeProviderSigner(step.provider);
      return accountView(await inference.getAccountWithDetail(step.provider));
    case "account":
      return accountView(await inference.getAccountWithDetail(step.provider));
    case "accounts":
      return (await inference.accountProcessor.listAccount()).map((a) => ({ user: a.user, provider: a.provider, balance: a.balance }));
    case "readOnlyServices":
      return serviceViews(await (await createZGComputeNetworkReadOnlyBroker(step.rpc)).inference.listService());
    case "services":
      return serviceViews(await inference.listService());
    case "chat":
      return chat(broker, step);
    case "verify":
      return inference.processResponse(step.provider, step.chatID);
    case "retrieveFund":
      if (step.provider) return ledger.retrieveFundFromProvider("inference", step.provider);
      return ledger.retrieveFund("inference");
    case "refund":
      return ledger.refund(step.amount);
    default:
      throw new Error(`unknown op ${step.op}`);
  }
}

async function main() {
  const config = JSON.parse(process.argv[2]);
  // cacheTimeout -1: ethers answers a request identical to one made in the last 250 ms
  // from its cache, and on the devnet, which mines at once, the SDK's next transaction
  // follows the last within that window: its eth_getTransactionCount came back stale
  // and the transfer was refused as a used nonce.
  const provider = new ethers.JsonRpcProvider(config.rpc, undefined, { cacheTimeout: -1 });
  provider.pollingInterval = 100;
  const wallet = new ethers.Wallet(config.key, provider);
  const steps = [];
  try {
    // A gas price given up front spares each ledger transaction the SDK's own
    // getFeeData and the 1 s pause after it; the inference contract's
    // transactions (acknowledgeTEESigner) still take that path.
    const { gasPrice } = await provider.getFeeData();
    const broker = await createZGComputeNetworkBroker(wallet, undefined, undefined, undefined, gasPrice);
    for (const step of config.steps) {
      const started = Date.now();
      const result = await run(broker, step);
      steps.push({ op: step.op, ms: Date.now() - started, result: result === undefined ? null : result });
    }
    process.stdout.write(JSON.stringify(plain({ address: wallet.address, steps })) + "\n");
  } catch (error) {
    const message = error && error.stack ? error.stack : String(error);
    process.stdout.write(JSON.stringify(plain({ address: wallet.address, steps, error: message })) + "\n");
    process.exitCode = 1;
  } finally {
    provider.destroy();
  }
  // The SDK races every receipt against a 300 s timer it never clears: leave without it.
  process.exit();
}

main();
