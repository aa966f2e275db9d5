// A dApp's whole part of a PoT order, with viem and @pot-network/contracts: commit to the test set,
// approve the reward, place the order, open the commitment in the release window, and wait for the
// committee's settlement. What the dApp must have made before (see README.md): the task spec and the
// training data uploaded to IPFS (the spec's CID goes on-chain), and the test set, whose CID it keeps
// secret behind a salted commitment until the release window and uploads before it releases.
//
//   POT_RPC_URL=http://127.0.0.1:8545 POT_DEPLOYMENT=deployment.json POT_PRIVATE_KEY=0x... \
//   POT_SPEC_CID=bafy... POT_TEST_CID=bafy... node dist/place-order.js
//
// Optional: POT_TEST_SALT (32 bytes hex; random otherwise, and printed: without it the test set can
// never be released), POT_REWARD (token wei, default 100 POT), POT_TRAIN_DURATION,
// POT_VALIDATE_DURATION, POT_CHALLENGE_DURATION, POT_REVEAL_DURATION (seconds), POT_MODEL_TYPE,
// POT_TIMEOUT (seconds to wait for the settlement). Prints one JSON object per step on stdout.
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import {
  createPublicClient,
  createWalletClient,
  defineChain,
  encodeAbiParameters,
  http,
  keccak256,
  parseEventLogs,
  stringToHex,
  type Address,
  type Hex,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { getDeployment, orderBookAbi, potTokenAbi } from "@pot-network/contracts";

function env(name: string, fallback?: string): string {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === "") throw new Error(`set ${name}`);
  return v;
}

function say(step: string, fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ step, ...fields }, (_k, v) => (typeof v === "bigint" ? v.toString() : v)));
}

/** CONVENTIONS.md: keccak256(abi.encode(address client, bytes32 keccak256(bytes(testCid)), bytes32 salt)). */
export function testCommitment(client: Address, testCid: string, salt: Hex): Hex {
  return keccak256(encodeAbiParameters(
    [{ type: "address" }, { type: "bytes32" }, { type: "bytes32" }],
    [client, keccak256(stringToHex(testCid)), salt],
  ));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const rpc = env("POT_RPC_URL");
  const reader = createPublicClient({ transport: http(rpc) });
  const chainId = await reader.getChainId();
  const chain = defineChain({
    id: chainId,
    name: `chain ${chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpc] } },
  });
  const client = createPublicClient({ chain, transport: http(rpc) });
  const account = privateKeyToAccount(env("POT_PRIVATE_KEY") as Hex);
  const wallet = createWalletClient({ account, chain, transport: http(rpc) });
  // the deployment file of `pot contracts deploy` (or of `pot devnet up`): chain id -> addresses
  const { addresses } = getDeployment(chainId, JSON.parse(readFileSync(env("POT_DEPLOYMENT"), "utf8")));
  const book = { address: addresses.OrderBook, abi: orderBookAbi } as const;
  const token = { address: addresses.PoTToken, abi: potTokenAbi } as const;

  const specCid = env("POT_SPEC_CID");
  const testCid = env("POT_TEST_CID");
  const salt = env("POT_TEST_SALT", "0x" + randomBytes(32).toString("hex")) as Hex;
  const commitment = testCommitment(account.address, testCid, salt);
  const reward = BigInt(env("POT_REWARD", (100n * 10n ** 18n).toString()));
  const durations = {
    trainDuration: Number(env("POT_TRAIN_DURATION", "30")),
    validateDuration: Number(env("POT_VALIDATE_DURATION", "10")),
    challengeDuration: Number(env("POT_CHALLENGE_DURATION", "10")),
    revealDuration: Number(env("POT_REVEAL_DURATION", "8")),
  };
  // CONVENTIONS.md: the validation function's ASCII name, right-padded with zeros to 32 bytes
  const modelType = stringToHex(env("POT_MODEL_TYPE", "classification-accuracy-v1"), { size: 32 });
  say("commitment", { client: account.address, testCid, salt, commitment });

  // the reward moves from the client into escrow: approve the OrderBook first
  const allowance = await client.readContract({ ...token, functionName: "allowance",
                                                args: [account.address, addresses.OrderBook] });
  if (allowance < reward) {
    const hash = await wallet.writeContract({ ...token, functionName: "approve", args: [addresses.OrderBook, reward] });
    await client.waitForTransactionReceipt({ hash });
  }

  // simulate first: a revert comes back as the contract's named custom error (the ABI has them)
  const { request } = await client.simulateContract({
    ...book, account, functionName: "placeOrder",
    args: [{ reward, ...durations, modelType, testCommitment: commitment, specCid }],
  });
  const placedTx = await client.waitForTransactionReceipt({ hash: await wallet.writeContract(request) });
  const [placed] = parseEventLogs({ abi: orderBookAbi, logs: placedTx.logs, eventName: "OrderPlaced" });
  const orderId = placed.args.orderId;
  say("placed", { orderId, t0: placed.args.t0, tx: placedTx.transactionHash, block: placedTx.blockNumber });

  // the test set may be opened only inside [revealEnd, releaseEnd): after the models are committed
  const [, revealEnd, releaseEnd] = await client.readContract({ ...book, functionName: "windows", args: [orderId] });
  for (;;) {
    const head = await client.getBlock();
    if (head.timestamp >= releaseEnd) throw new Error(`missed the release window [${revealEnd}, ${releaseEnd})`);
    if (head.timestamp >= revealEnd) break;
    await sleep(500);
  }
  const release = await client.simulateContract({ ...book, account, functionName: "releaseTestData",
                                                  args: [orderId, testCid, salt] });
  const releasedTx = await client.waitForTransactionReceipt({ hash: await wallet.writeContract(release.request) });
  const [released] = parseEventLogs({ abi: orderBookAbi, logs: releasedTx.logs, eventName: "TestDataReleased" });
  say("released", { orderId, t3: released.args.t3, tx: releasedTx.transactionHash });

  // validators score, verifiers may challenge, the committee settles: wait for OrderSettled
  const deadline = Date.now() + Number(env("POT_TIMEOUT", "300")) * 1000;
  while (Date.now() < deadline) {
    const settled = await client.getContractEvents({ ...book, eventName: "OrderSettled", args: { orderId },
                                                     fromBlock: placedTx.blockNumber });
    if (settled.length > 0) {
      const ev = settled[0];
      const winnerBalance = await client.readContract({ ...token, functionName: "balanceOf", args: [ev.args.winner!] });
      say("settled", { orderId, winner: ev.args.winner, winningMid: ev.args.winningMid, total: ev.args.total,
                       tx: ev.transactionHash, block: ev.blockNumber, winnerBalance });
      return;
    }
    await sleep(1000);
  }
  throw new Error(`order ${orderId} was not settled within POT_TIMEOUT`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
