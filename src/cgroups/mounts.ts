/**
 * Where the cgroup file systems are: read from /proc/self/mountinfo.
 * A host is in one of three modes: v1 (legacy), v2 (unified) or hybrid
 * (v1 controllers plus a cgroup2 mount holding few or no controllers).
 */
import { readFileSync } from "node:fs";

export interface V1Hierarchy {
  /** Mount point, e.g. /sys/fs/cgroup/cpu. */
  mount: string;
  /** Controllers (and name=... for named hierarchies) in its options. */
  controllers: string[];
  /** The path of the mount's root inside the hierarchy (mountinfo field 4). */
  root: string;
}

export interface CgroupLayout {
  mode: "v1" | "v2" | "hybrid";
  v1: V1Hierarchy[];
  /** The cgroup2 mount point, when there is one. */
  unified?: string;
}

const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** Parse mountinfo text into the cgroup layout. */
export function parseCgroupLayout(mountinfo: string): CgroupLayout {
  const v1: V1Hierarchy[] = [];
  let unified: string | undefined;
  for (const line of mountinfo.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const fields = line.slice(0, sep).split(" ");
    const [fstype, , superOptions = ""] = line.slice(sep + 3).split(" ");
    const mount = unescape(fields[4] ?? "");
    if (fstype === "cgroup2") {
      unified ??= mount;
    } else if (fstype === "cgroup") {
      const controllers = superOptions.split(",").filter((o) => o !== "rw" && o !== "ro" && !o.startsWith("release_agent") && o !== "clone_children" && o !== "noprefix" && o !== "xattr" && o !== "cpuset_v2_mode");
      if (!v1.some((h) => h.mount === mount)) v1.push({ mount, controllers, root: unescape(fields[3] ?? "/") });
    }
  }
  const mode = v1.length === 0 ? "v2" : unified ? "hybrid" : "v1";
  return unified === undefined ? { mode, v1 } : { mode, v1, unified };
}

let cached: CgroupLayout | undefined;

/** The layout of this host (read once per process). */
export function hostCgroupLayout(): CgroupLayout {
  cached ??= parseCgroupLayout(readFileSync("/proc/self/mountinfo", "utf8"));
  return cached;
}
