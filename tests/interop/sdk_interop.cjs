// Drives the official 0G TypeScript SDK (@0gfoundation/0g-ts-sdk 1.2.8) against a devnet.
//
// Usage: node sdk_interop.cjs <mode> '<config JSON>'
//   mode "plain":     Indexer.upload(ZgFile), then Indexer.download, byte for byte
//   mode "encrypted": upload with {encryption: {type: 'aes256', key}}, then
//                     Downloader([StorageNode]).withSymmetricKey(key).download
//   mode "upload":    Indexer.upload only (a repeat upload shows the dedupe path)
//   mode "download":  Indexer.download of config.root only (a file another client stored)
// Config: {rpc, indexer, key, input, output, aesKey?, root?}
//
// Prints exactly one JSON line on stdout; the SDK's own progress messages are
// sent to stderr. Packages are resolved through NODE_PATH (the test's npm cache).
"use strict";

const { Indexer, ZgFile, Downloader, StorageNode } = require("@0gfoundation/0g-ts-sdk");
const { ethers } = require("ethers");

const writeResult = (value) => process.stdout.write(JSON.stringify(value) + "\n");
for (const level of ["log", "info", "debug", "warn"]) {
  console[level] = (...args) => console.error(...args);
}

function hexToBytes(hex) {
  return Uint8Array.from(Buffer.from(hex.replace(/^0x/, ""), "hex"));
}

async function upload(config, options) {
  const provider = new ethers.JsonRpcProvider(config.rpc);
  const signer = new ethers.Wallet(config.key, provider);
  const indexer = new Indexer(config.indexer);
  const file = await ZgFile.fromFilePath(config.input);
  try {
    const [tree, treeError] = await file.merkleTree();
    if (treeError !== null) throw treeError;
    const started = Date.now();
    const [result, error] = await indexer.upload(file, config.rpc, signer, options);
    if (error !== null) throw error;
    return { result, localRoot: tree.rootHash(), uploadMs: Date.now() - started, indexer };
  } finally {
    await file.close();
    provider.destroy();
  }
}

async function main() {
  const [mode, configText] = process.argv.slice(2);
  const config = JSON.parse(configText);
  if (mode === "plain" || mode === "upload") {
    const { result, localRoot, uploadMs, indexer } = await upload(config, {});
    const report = { mode, ...result, localRoot, uploadMs };
    if (mode === "plain") {
      const started = Date.now();
      const error = await indexer.download(result.rootHash, config.output, true);
      if (error !== null) throw error;
      report.downloadMs = Date.now() - started;
      report.output = config.output;
    }
    writeResult(report);
    return;
  }
  if (mode === "download") {
    const started = Date.now();
    const error = await new Indexer(config.indexer).download(config.root, config.output, true);
    if (error !== null) throw error;
    writeResult({ mode, root: config.root, output: config.output, downloadMs: Date.now() - started });
    return;
  }
  if (mode === "encrypted") {
    const key = hexToBytes(config.aesKey);
    const options = { encryption: { type: "aes256", key } };
    const { result, localRoot, uploadMs, indexer } = await upload(config, options);
    const locations = await indexer.getFileLocations(result.rootHash);
    const nodes = (locations || []).map((location) => new StorageNode(location.url));
    if (nodes.length === 0) throw new Error("the indexer knows no location of the upload");
    const started = Date.now();
    const error = await new Downloader(nodes)
      .withSymmetricKey(key)
      .download(result.rootHash, config.output, false);
    if (error !== null) throw error;
    writeResult({
      mode,
      ...result,
      localRoot,
      uploadMs,
      downloadMs: Date.now() - started,
      nodes: locations.map((location) => location.url),
      output: config.output,
    });
    return;
  }
  throw new Error(`unknown mode ${mode}`);
}

main().then(
  () => process.exit(0),
  (error) => {
    writeResult({ error: String((error && error.stack) || error) });
    process.exit(1);
  },
);
