/** `list [--format table|json] [-q]`: every container under --root. */
import { UsageError } from "../../errors.ts";
import { listIds, loadState, ociState, type OciState } from "../../runtime/state.ts";
import { parseCommand, type Globals } from "./common.ts";

/** Columns padded like Go's tabwriter (min width 12, padding 3), as runc prints them. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(12, ...rows.map((r) => (r[c] ?? "").length + 3)));
  return rows.map((r) => `${r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join("")}\n`).join("");
}

function states(root: string): OciState[] {
  const out: OciState[] = [];
  for (const id of listIds(root)) {
    try {
      out.push({ ...ociState(root, loadState(root, id)), owner: "root" });
    } catch {
      // removed while we listed
    }
  }
  return out;
}

/**
 * The dokrust face (`dokrust list`, see src/cli/detached/) shows its own
 * columns: name, short id, state, pid, created, command.
 */
async function dokrustList(root: string, format: string, quiet: boolean): Promise<void> {
  const { listEntries, listRows } = await import("../detached/list-view.ts");
  const entries = listEntries(root);
  if (quiet) process.stdout.write(entries.map((e) => `${e.id}\n`).join(""));
  else if (format === "json") process.stdout.write(`${JSON.stringify(entries)}\n`);
  else process.stdout.write(table(listRows(entries)));
}

export async function run(args: string[], globals: Globals, face?: "dokrust"): Promise<number> {
  const { values, positionals } = parseCommand("list", args, {
    format: { type: "string", short: "f" },
    quiet: { type: "boolean", short: "q" },
  });
  if (positionals.length) throw new UsageError(`list: unexpected arguments: ${positionals.join(" ")}`);
  const format = values.format ?? "table";
  if (format !== "table" && format !== "json") throw new UsageError(`list --format: ${JSON.stringify(format)} is not table or json`);
  // what runs killed before their cleanup left is removed, not listed
  const { sweepStale } = await import("../../runtime/sweep.ts");
  await sweepStale(globals.root);
  if (face === "dokrust") {
    await dokrustList(globals.root, format, values.quiet ?? false);
    return 0;
  }
  const all = states(globals.root);
  if (values.quiet) {
    process.stdout.write(all.map((s) => `${s.id}\n`).join(""));
  } else if (format === "json") {
    process.stdout.write(`${JSON.stringify(all)}\n`);
  } else {
    const rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"], ...all.map((s) => [s.id, String(s.pid), s.status, s.bundle, s.created, s.owner])];
    process.stdout.write(table(rows));
  }
  return 0;
}
