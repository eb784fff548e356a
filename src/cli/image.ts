/**
 * `dokrust image import|ls|inspect|rm|prune` and `dokrust pull`: thin
 * parsing over src/image.  Errors are DokrustErrors (one line, exit 125).
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "../errors.ts";

export const IMAGE_USAGE = `Usage: dokrust image COMMAND

  import PATH --name NAME   import an OCI layout, a docker-save archive, a root
                            file system tarball (gzip, zstd, xz or none) or a
                            root file system directory
  ls [--format table|json]  list images
  inspect NAME              show an image (JSON)
  rm [--force] NAME...      remove images (refused while a container uses one)
  prune                     remove blobs and layers no image uses

  dokrust pull [--insecure] REF    pull REF (registry/repository:tag) from a registry

The store lives under $DOKRUST_DATA_ROOT (default /var/lib/dokrust).
`;

type Options = NonNullable<ParseArgsConfig["options"]>;

function parse<O extends Options>(command: string, args: string[], options: O) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError(`${command}: ${(err as Error).message.split("\n")[0]}`);
  }
}

function say(line: string): void {
  if (process.stderr.isTTY) process.stderr.write(`${line}\n`);
}

function requireRoot(command: string): void {
  if (process.getuid?.() !== 0) throw new UsageError(`${command}: the image store needs root (owners, device nodes, overlay attributes); try sudo`);
}

async function importCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse("image import", args, { name: { type: "string" } });
  if (positionals.length !== 1) throw new UsageError("image import: expected one PATH (dokrust image import PATH --name NAME)");
  if (values.name === undefined) throw new UsageError("image import: an image name is required (--name NAME)");
  requireRoot("image import");
  const { resolve } = await import("node:path");
  const { importImage } = await import("../image/import.ts");
  const { ImageStore } = await import("../image/store.ts");
  const record = await importImage(resolve(positionals[0]!), values.name, new ImageStore(), say);
  process.stdout.write(`${record.name} ${record.id}\n`);
  return 0;
}

async function listCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse("image ls", args, { format: { type: "string" }, quiet: { type: "boolean", short: "q" } });
  if (positionals.length) throw new UsageError(`image ls: unexpected arguments: ${positionals.join(" ")}`);
  const format = values.format ?? "table";
  if (format !== "table" && format !== "json") throw new UsageError(`image ls --format: ${JSON.stringify(format)} is not table or json`);
  const { ImageStore } = await import("../image/store.ts");
  const records = Object.values(new ImageStore().records()).sort((a, b) => a.name.localeCompare(b.name));
  if (values.quiet) process.stdout.write(records.map((r) => `${r.name}\n`).join(""));
  else if (format === "json") process.stdout.write(`${JSON.stringify(records)}\n`);
  else {
    const { table } = await import("./commands/list.ts");
    const rows = [["NAME", "ID", "LAYERS", "ADDED"], ...records.map((r) => [r.name, r.id.slice(7, 19), String(r.layers.length), r.added])];
    process.stdout.write(table(rows));
  }
  return 0;
}

async function inspectCommand(args: string[]): Promise<number> {
  const { positionals } = parse("image inspect", args, {});
  if (positionals.length === 0) throw new UsageError("image inspect: an image name is required");
  const { ImageStore } = await import("../image/store.ts");
  const { imageConfig } = await import("../image/rootfs.ts");
  const store = new ImageStore();
  const out = positionals.map((name) => {
    const record = store.get(name);
    const { config, architecture, os, created } = imageConfig(store, record);
    const c = config;
    return {
      id: record.id,
      name: record.name,
      manifest: record.manifest,
      architecture,
      os,
      created,
      added: record.added,
      source: record.source,
      layers: record.layers,
      config: {
        Entrypoint: c.Entrypoint ?? null,
        Cmd: c.Cmd ?? null,
        Env: c.Env ?? [],
        WorkingDir: c.WorkingDir ?? "",
        User: c.User ?? "",
        ExposedPorts: c.ExposedPorts ?? {},
        Labels: c.Labels ?? {},
      },
    };
  });
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  return 0;
}

async function removeCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse("image rm", args, { force: { type: "boolean", short: "f" } });
  if (positionals.length === 0) throw new UsageError("image rm: an image name is required");
  requireRoot("image rm");
  const { removeImages } = await import("../image/gc.ts");
  const { ImageStore } = await import("../image/store.ts");
  for (const name of await removeImages(new ImageStore(), positionals, values.force ?? false)) process.stdout.write(`${name}\n`);
  return 0;
}

async function pruneCommand(args: string[]): Promise<number> {
  const { positionals } = parse("image prune", args, {});
  if (positionals.length) throw new UsageError(`image prune: unexpected arguments: ${positionals.join(" ")}`);
  requireRoot("image prune");
  const { ImageStore } = await import("../image/store.ts");
  const store = new ImageStore();
  const removed = await store.locked(async () => store.collect());
  process.stdout.write(`removed ${removed.blobs} blobs and ${removed.layers} layers\n`);
  return 0;
}

/** `dokrust image ...`. */
export async function runImage(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case "import":
      return importCommand(rest);
    case "ls":
    case "list":
      return listCommand(rest);
    case "inspect":
      return inspectCommand(rest);
    case "rm":
    case "remove":
      return removeCommand(rest);
    case "prune":
      return pruneCommand(rest);
    case undefined:
    case "-h":
    case "--help":
    case "help":
      process.stdout.write(IMAGE_USAGE);
      return 0;
    default:
      throw new UsageError(`image: unknown command ${JSON.stringify(command)}; see dokrust image --help`);
  }
}

/** `dokrust pull REF`. */
export async function runPull(args: string[]): Promise<number> {
  const { values, positionals } = parse("pull", args, { insecure: { type: "boolean" }, name: { type: "string" }, help: { type: "boolean", short: "h" } });
  if (values.help) {
    process.stdout.write(IMAGE_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError("pull: expected one image reference (dokrust pull registry/repository:tag)");
  requireRoot("pull");
  const { pullImage } = await import("../image/pull.ts");
  const { ImageStore } = await import("../image/store.ts");
  const record = await pullImage(positionals[0]!, new ImageStore(), { insecure: values.insecure ?? false, name: values.name });
  process.stdout.write(`${record.name} ${record.id}\n`);
  return 0;
}
