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

/**
 * One directory a `cgroup` mount shows: the container's own cgroup in
 * one hierarchy, bound at `name` under the mount's destination ("" for
 * a cgroup v2 host: the destination itself), plus symlinks named after
 * each controller of a co-mounted hierarchy ("cpu" → "cpu,cpuacct").
 */
export interface CgroupMountSource {
  name: string;
  source: string;
  links: string[];
}

/** What the compiler needs to know of the host to plan mounts. */
export interface MountHost {
  /** Absolute rootfs path on the host, for messages. */
  rootfs: string;
  /** Directory that relative bind sources are relative to (the bundle). */
  base: string;
  /** Whether a host path is a directory (bind targets mirror it). */
  isDirectory(path: string): boolean;
  /**
   * The container's cgroup directories, for mounts of type `cgroup`;
   * without them such a mount is passed to mount(2) as it is.
   */
  cgroupMounts?: CgroupMountSource[];
}

function absoluteSource(source: string, base: string): string {
  return source.startsWith("/") ? source : `${base}/${source}`;
}

const REMOUNT_FLAGS =
  MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC | MS.NOATIME | MS.NODIRATIME | MS.RELATIME | MS.STRICTATIME | MS.NOSYMFOLLOW;

/**
 * A `cgroup` mount as runc makes it without a cgroup namespace of its
 * own: a mount of the cgroup file system itself would show (or, on a
 * host whose v1 controllers are mounted apart, fail with EBUSY) the
 * whole host tree.  Instead: a tmpfs, the container's own cgroup of each
 * hierarchy bound on it, the co-mount symlinks, and the tmpfs made
 * read-only last when asked.  On a v2 host the one directory is bound on
 * the destination itself.
 */
function cgroupSteps(dest: string, at: string, opts: ParsedOptions, sources: readonly CgroupMountSource[]): Step[] {
  const flags = opts.flags & REMOUNT_FLAGS;
  const steps: Step[] = [];
  const whole = sources.length === 1 && sources[0]!.name === "";
  if (!whole) {
    steps.push({
      op: Op.MOUNT,
      args: ["tmpfs", dest, "tmpfs", flags & ~MS.RDONLY, "mode=755", Opt.IN_ROOT | Opt.MKDIR],
      what: `mount tmpfs on ${at}`,
    });
  }
  for (const { name, source, links } of sources) {
    const target = name ? `${dest}/${name}` : dest;
    steps.push(
      { op: Op.MOUNT, args: [source, target, "", MS.BIND | MS.REC, "", Opt.IN_ROOT | Opt.MKDIR], what: `bind mount ${source} on ${at}${name ? `/${name}` : ""}` },
      ...(flags ? [{ op: Op.REMOUNT, args: [target, flags, Opt.IN_ROOT], what: `remount ${at}${name ? `/${name}` : ""}` }] : []),
      ...links.map((link) => ({ op: Op.SYMLINK, args: [name, `${dest}/${link}`], what: `create symlink ${at}/${link}` })),
    );
  }
  if (!whole && flags & MS.RDONLY) steps.push({ op: Op.REMOUNT, args: [dest, flags, Opt.IN_ROOT], what: `remount ${at} read-only` });
  return steps;
}

export function mountSteps(mount: Mount, host: MountHost): Step[] {
  const dest = mount.destination;
  if (!dest.startsWith("/")) {
    throw new UsageError(`mount destination ${JSON.stringify(dest)} is not an absolute path`);
  }
  const opts = parseMountOptions(mount.options);
  const type = mount.type ?? "";
  const at = `${host.rootfs}${dest}`;
  const steps: Step[] = [];
  if (type === "cgroup" && !opts.bind && host.cgroupMounts?.length) {
    steps.push(...cgroupSteps(dest, at, opts, host.cgroupMounts));
  } else if (opts.bind || type === "bind") {
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
