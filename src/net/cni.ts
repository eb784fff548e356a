/**
 * CNI networks (`--net cni:NAME`): not done yet.
 */
import { UsageError } from "../errors.ts";
import type { RunOptions } from "../cli/dokrust.ts";
import type { PreparedNetwork } from "./setup.ts";

export async function prepareCni(options: RunOptions, _ctx: unknown, _base: Omit<PreparedNetwork, "nsFd">): Promise<PreparedNetwork> {
  throw new UsageError(`--net cni:${options.net.kind === "cni" ? options.net.name : ""}: CNI networks are not supported yet`);
}
