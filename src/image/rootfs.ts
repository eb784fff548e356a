/**
 * A container's root from an image: the image's layers as overlayfs lower
 * directories and a private upper and work directory under the
 * container's state directory.  The overlay itself is mounted by the plan
 * inside the container's mount namespace (PlanContext.overlayRoot), so
 * nothing shows on the host and it goes when the container goes; the
 * upper directory goes with the state directory.  The image never changes.
 *
 * The state directory also gets an `image` file naming the store and the
 * image, which `image rm` reads to refuse removing an image in use.
 */
import { closeSync, constants, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import type { RunOptions } from "../cli/dokrust.ts";
import { DokrustError, UsageError } from "../errors.ts";
import { lgetxattr } from "../native/fs.ts";
import { applyImageConfig, type GivenRun, type IdFiles } from "./defaults.ts";
import { checkConfig, parseJson, type RunConfig } from "./oci.ts";
import { ImageStore, type ImageRecord } from "./store.ts";

export interface OverlayRoot {
  /** Lower directories, topmost first (overlayfs's order). */
  lower: string[];
  upper: string;
  work: string;
}

export interface ImageRoot {
  record: ImageRecord;
  /** Where the overlay is mounted (the container's rootfs). */
  rootfs: string;
  overlay: OverlayRoot;
  config: RunConfig;
  files: IdFiles;
}

/** mount(2) takes at most a page of options. */
const MOUNT_DATA_MAX = 4000;

/** The overlayfs mount options for `root`. */
export function overlayOptions(root: OverlayRoot): string {
  const data = `lowerdir=${root.lower.join(":")},upperdir=${root.upper},workdir=${root.work}`;
  for (const path of [...root.lower, root.upper, root.work]) {
    if (/[:,\\]/.test(path)) throw new DokrustError(`overlay directory ${path}: ':', ',' and '\\' cannot appear in overlayfs paths`);
  }
  if (data.length > MOUNT_DATA_MAX) {
    throw new DokrustError(`the image has too many layers (${root.lower.length}) for one overlay mount (options longer than ${MOUNT_DATA_MAX} bytes); use a shorter DOKRUST_DATA_ROOT`);
  }
  return data;
}

function lstatQuiet(path: string) {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

/** The image's /etc/<name> as the merged layers show it, without following any symlink. */
export function readImageFile(layers: readonly string[], name: string): string {
  for (const layer of layers) {
    const etc = lstatQuiet(`${layer}/etc`);
    if (!etc) continue;
    if (!etc.isDirectory()) return ""; // a whiteout, or a symlink we do not follow
    const st = lstatQuiet(`${layer}/etc/${name}`);
    if (st?.isFile()) {
      const fd = openSync(`${layer}/etc/${name}`, constants.O_RDONLY | constants.O_NOFOLLOW);
      try {
        return readFileSync(fd, "utf8");
      } finally {
        closeSync(fd);
      }
    }
    if (st) return "";
    if (new TextDecoder().decode(lgetxattr(`${layer}/etc`, "trusted.overlay.opaque")) === "y") return "";
  }
  return "";
}

/** The run config of a stored image. */
export function imageConfig(store: ImageStore, record: ImageRecord): { config: RunConfig; architecture: string; os: string; created?: string } {
  const config = checkConfig(parseJson(store.readBlob(record.id), `image ${record.name}: config`), `image ${record.name}: config`);
  const out: { config: RunConfig; architecture: string; os: string; created?: string } = {
    config: config.config ?? {},
    architecture: config.architecture,
    os: config.os,
  };
  if (config.created) out.created = config.created;
  return out;
}

/**
 * Prepare the root of a container from image `name`: the overlay's
 * directories under `stateDir` and the reference file.
 */
export function prepareImageRoot(name: string, stateDir: string, store = new ImageStore()): ImageRoot {
  const record = store.get(name);
  const lower = [...record.layers].reverse().map((d) => store.layerPath(d));
  for (const dir of lower) {
    if (!lstatQuiet(dir)?.isDirectory()) throw new DokrustError(`image ${name}: layer ${dir} is missing from the store (re-import the image)`);
  }
  const base = `${stateDir}/overlay`;
  const overlay: OverlayRoot = { lower, upper: `${base}/upper`, work: `${base}/work` };
  const rootfs = `${base}/merged`;
  if (!lower.length) {
    // overlayfs needs a lower directory: an image of no layers is empty.
    mkdirSync(`${base}/empty`, { recursive: true });
    lower.push(`${base}/empty`);
  }
  for (const dir of [overlay.upper, overlay.work, rootfs]) mkdirSync(dir, { recursive: true, mode: 0o755 });
  overlayOptions(overlay);
  writeFileSync(`${stateDir}/image`, `${JSON.stringify({ store: store.root, name, id: record.id })}\n`);
  const { config } = imageConfig(store, record);
  return { record, rootfs, overlay, config, files: { passwd: readImageFile(lower, "passwd"), group: readImageFile(lower, "group") } };
}

/** The state roots dokrust containers may live under. */
function stateRoots(): string[] {
  const roots = new Set<string>([process.env.DOKRUST_ROOT || "/run/dokrust"]);
  try {
    for (const entry of readdirSync("/run")) if (entry.startsWith("dokrust")) roots.add(`/run/${entry}`);
  } catch {
    // no /run
  }
  return [...roots];
}

/** State directories of running containers made from image `name` of `store`. */
export function imageUsers(store: ImageStore, name: string): string[] {
  const users: string[] = [];
  for (const root of stateRoots()) {
    let ids: string[];
    try {
      ids = readdirSync(root);
    } catch {
      continue;
    }
    for (const id of ids) {
      try {
        const ref = JSON.parse(readFileSync(`${root}/${id}/image`, "utf8")) as { store?: string; name?: string };
        if (ref.store === store.root && ref.name === name) users.push(`${root}/${id}`);
      } catch {
        // not a container from an image, or gone meanwhile
      }
    }
  }
  return users;
}

/**
 * The dokrust face's `-r IMAGE`: the container's root and the options
 * with the image config's defaults (command, env, working directory,
 * user) filled in where the command line left them out.
 */
export function imageRun(options: RunOptions, stateDir: string): { options: RunOptions; rootfs: string; overlay: OverlayRoot } {
  const image = options.image!;
  const store = new ImageStore();
  if (!store.records()[image.name]) {
    throw new UsageError(`-r ${image.name}: no such directory, and no image of that name (see dokrust image ls)`);
  }
  const root = prepareImageRoot(image.name, stateDir, store);
  const given: GivenRun = { args: image.args, shell: image.shell, env: options.env };
  if (options.workdir !== undefined) given.workdir = options.workdir;
  if (options.user !== undefined) given.user = options.user;
  const run = applyImageConfig(given, root.config, root.files);
  const resolved: RunOptions = { ...options, args: run.args, env: run.env };
  if (run.workdir !== undefined) resolved.workdir = run.workdir;
  if (run.user !== undefined) resolved.user = run.user;
  return { options: resolved, rootfs: root.rootfs, overlay: root.overlay };
}
