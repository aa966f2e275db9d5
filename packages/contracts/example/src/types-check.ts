// Compile-time checks that the package's ABIs keep their literal types: with a widened `Abi` every
// function name and argument would be accepted and every result would be `unknown`, so each line
// below would stop compiling (or each @ts-expect-error would be unused, which is an error too).
import type { PublicClient } from "viem";
import {
  challengeManagerAbi,
  orderBookAbi,
  rewardMultisigAbi,
  stakeRegistryAbi,
  type ContractName,
  type Deployment,
} from "@pot-network/contracts";

export async function typesOnly(client: PublicClient, d: Deployment): Promise<void> {
  const windows = await client.readContract({ address: d.addresses.OrderBook, abi: orderBookAbi,
                                              functionName: "windows", args: [1n] });
  const revealEnd: bigint = windows[1];
  const order = await client.readContract({ address: d.addresses.OrderBook, abi: orderBookAbi,
                                            functionName: "getOrder", args: [1n] });
  const client_: `0x${string}` = order.client;
  const reward: bigint = order.reward;
  const threshold: number = await client.readContract({ address: d.addresses.RewardMultisig, abi: rewardMultisigAbi,
                                                        functionName: "threshold" });
  const stake = await client.readContract({ address: d.addresses.StakeRegistry, abi: stakeRegistryAbi,
                                            functionName: "stakerOf", args: [client_] });
  const staked: bigint = stake.stake;
  void [revealEnd, reward, threshold, staked];
  // @ts-expect-error: no such function in OrderBook's ABI
  await client.readContract({ address: d.addresses.OrderBook, abi: orderBookAbi, functionName: "noSuchFunction" });
  // @ts-expect-error: windows takes a uint256, not a string
  await client.readContract({ address: d.addresses.OrderBook, abi: orderBookAbi, functionName: "windows", args: ["1"] });
  // @ts-expect-error: ChallengeManager has no placeOrder
  await client.simulateContract({ address: d.addresses.ChallengeManager, abi: challengeManagerAbi, functionName: "placeOrder" });
  const name: ContractName = "OrderBook";
  // @ts-expect-error: not a PoT contract
  const bad: ContractName = "Uniswap";
  void [name, bad];
}
