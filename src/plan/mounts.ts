/**
 * Mount entries of the runtime-spec → plan steps.
 *
 * A bind mount takes up to three mount(2) calls, as the kernel wants: the
 * bind itself, a remount that applies ro/nosuid/... (the kernel ignores
 * those flags on the first call), and a propagation change.  Every target
 * is inside the root and is resolved there by the executor, so a symlink
 * in the rootfs can never send a mount outside it.
 */
import { UsageError } from "../errors.ts";
import { MOUNT_OPTIONS, MS, PROPAGATION_OPTIONS } from "./linux.ts";
import { Op, Opt, type Step } from "./ops.ts";
import type { Mount } from "../spec/types.ts";

/** A mount's options split into what mount(2) takes. */
export interface ParsedOptions {
  flags: number;
  propagation: number;
  data: string[];
  bind: boolean;
}

const EXTENSION_OPTIONS = new Set(["tmpcopyup", "idmap", "ridmap", "copy-symlink", "z", "Z"]);

export function parseMountOptions(options: readonly string[] = []): ParsedOptions {
  const parsed: ParsedOptions = { flags: 0, propagation: 0, data: [], bind: false };
  for (const option of options) {
    const known = MOUNT_OPTIONS[option];
    if (known) {
      if (known.flag & MS.BIND) parsed.bind = true;
      if (known.clear) parsed.flags &= ~known.flag;
      else parsed.flags |= known.flag;
      continue;
    }
    const propagation = PROPAGATION_OPTIONS[option];
    if (propagation !== undefined) {
      parsed.propagation |= propagation;
      continue;
    }
    if (EXTENSION_OPTIONS.has(option)) continue;
    parsed.data.push(option);
  }
  return parsed;
}

/** What the compiler needs to know of the host to plan mounts. */
export interface MountHost {
  /** Absolute rootfs path on the host, for messages. */
  rootfs: string;
  /** Directory that relative bind sources are relative to (the bundle). */
  base: string;
  /** Whether a host path is a directory (bind targets mirror it). */
  isDirectory(path: string): boolean;
}

function absoluteSource(source: string, base: string): string {
  return source.startsWith("/") ? source : `${base}/${source}`;
}

const REMOUNT_FLAGS =
  MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC | MS.NOATIME | MS.NODIRATIME | MS.RELATIME | MS.STRICTATIME | MS.NOSYMFOLLOW;

export function mountSteps(mount: Mount, host: MountHost): Step[] {
  const dest = mount.destination;
  if (!dest.startsWith("/")) {
    throw new UsageError(`mount destination ${JSON.stringify(dest)} is not an absolute path`);
  }
  const opts = parseMountOptions(mount.options);
  const type = mount.type ?? "";
  const at = `${host.rootfs}${dest}`;
  const steps: Step[] = [];
  if (opts.bind || type === "bind") {
    if (!mount.source) throw new UsageError(`bind mount on ${dest} has no source`);
    const source = absoluteSource(mount.source, host.base);
    const create = host.isDirectory(source) ? Opt.MKDIR : Opt.MKFILE;
    const recursive = mount.options?.includes("rbind") ? MS.REC : 0;
    steps.push({
      op: Op.MOUNT,
      args: [source, dest, "", MS.BIND | recursive, "", Opt.IN_ROOT | create],
      what: `bind mount ${source} on ${at}`,
    });
    const extra = opts.flags & REMOUNT_FLAGS;
    if (extra) {
      steps.push({ op: Op.REMOUNT, args: [dest, extra, Opt.IN_ROOT], what: `remount ${at} with ${(mount.options ?? []).join(",")}` });
    }
  } else {
    steps.push({
      op: Op.MOUNT,
      args: [mount.source ?? type, dest, type, opts.flags & ~MS.REMOUNT, opts.data.join(","), Opt.IN_ROOT | Opt.MKDIR],
      what: `mount ${type || mount.source} on ${at}`,
    });
  }
  if (opts.propagation) {
    steps.push({
      op: Op.MOUNT,
      args: ["", dest, "", opts.propagation, "", Opt.IN_ROOT],
      what: `set propagation of ${at}`,
    });
  }
  return steps;
}
