// Root of one file with the official 0G TS SDK, timed inside node.
// Usage: NODE_PATH=<node_modules from tools/ts_sdk.py> node merkle_tssdk.js FILE
// Prints one JSON line: {"root": "0x...", "ms": <ZgFile.fromFilePath + merkleTree>,
// "cpuMs": <CPU time of the same>, "maxRssBytes": <peak RSS of the node process>}
"use strict";

const { ZgFile } = require("@0gfoundation/0g-ts-sdk");

async function main() {
  const path = process.argv[2];
  if (!path) {
    throw new Error("usage: node merkle_tssdk.js FILE");
  }
  const cpuBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  const file = await ZgFile.fromFilePath(path);
  const [tree, error] = await file.merkleTree();
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const cpu = process.cpuUsage(cpuBefore);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  await file.close();
  if (error !== null || tree === null) {
    throw error || new Error("the SDK returned no tree");
  }
  const maxRssBytes = process.resourceUsage().maxRSS * 1024;
  process.stdout.write(JSON.stringify({ root: tree.rootHash(), ms, cpuMs, maxRssBytes }) + "\n");
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + "\n");
  process.exit(1);
});
