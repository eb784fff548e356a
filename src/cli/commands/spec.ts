/** `spec [--bundle DIR] [--rootless]`: write a default config.json. */
import { existsSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { DokrustError, UsageError } from "../../errors.ts";
import { defaultSpec } from "../../spec/defaults.ts";
import { parseCommand, type Globals } from "./common.ts";

export async function run(args: string[], _globals: Globals): Promise<number> {
  const { values, positionals } = parseCommand("spec", args, {
    bundle: { type: "string", short: "b" },
    rootless: { type: "boolean" },
  });
  if (positionals.length) throw new UsageError(`spec: unexpected arguments: ${positionals.join(" ")}`);
  if (values.rootless) throw new UsageError("spec --rootless: rootless containers are not supported by dokrust yet");
  const file = resolve(values.bundle ?? ".", "config.json");
  if (existsSync(file)) throw new DokrustError(`file ${file} exists: remove it first`);
  try {
    writeFileSync(file, `${JSON.stringify(defaultSpec(), null, "\t")}\n`, { mode: 0o666, flag: "wx" });
  } catch (err) {
    throw new DokrustError(`write ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return 0;
}
