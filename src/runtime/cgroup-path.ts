/**
 * linux.cgroupsPath → a cgroup path relative to each hierarchy's root.
 *
 * The path form is used as it is.  The systemd form `slice:prefix:name`
 * is laid out where systemd would put it (`a-b.slice:docker:ID` →
 * `/a.slice/a-b.slice/docker-ID.scope`), since dokrust has no systemd
 * driver but engines send that form when configured for one.  Without a
 * path the container gets `/dokrust/<id>`.
 */
import type { CgroupLayout } from "../cgroups/mounts.ts";
import { UsageError } from "../errors.ts";
import type { CgroupMountSource } from "../plan/mounts.ts";

/** Expand a systemd slice name into its parent chain. */
function expandSlice(slice: string): string {
  if (slice === "" || slice === "-.slice") return "";
  if (!slice.endsWith(".slice") || slice.includes("/")) throw new UsageError(`linux.cgroupsPath: invalid slice ${JSON.stringify(slice)}`);
  const parts = slice.slice(0, -".slice".length).split("-");
  if (parts.some((p) => p === "")) throw new UsageError(`linux.cgroupsPath: invalid slice ${JSON.stringify(slice)}`);
  return parts.map((_, i) => `/${parts.slice(0, i + 1).join("-")}.slice`).join("");
}

/** The cgroup path a container uses. */
export function cgroupPathOf(cgroupsPath: string | undefined, id: string): string {
  if (!cgroupsPath) return `/dokrust/${id}`;
  const parts = cgroupsPath.split(":");
  if (parts.length === 3 && !cgroupsPath.startsWith("/")) {
    const [slice, prefix, name] = parts as [string, string, string];
    const unit = name.endsWith(".slice") ? name : `${prefix ? `${prefix}-` : ""}${name}.scope`;
    return `${expandSlice(slice || "system.slice")}/${unit}`;
  }
  return `/${cgroupsPath.replace(/^\/+/, "")}`;
}

/** The ancestors of a cgroup path, outermost first ("/a/b/c" → "/a", "/a/b"). */
export function cgroupAncestors(path: string): string[] {
  const parts = path.split("/").filter(Boolean);
  return parts.slice(0, -1).map((_, i) => `/${parts.slice(0, i + 1).join("/")}`);
}

/**
 * What a `cgroup` mount in the container shows (see plan/mounts.ts): the
 * container's directory in each v1 hierarchy, named as the host names
 * its mount point, or on a v2 host the one unified directory.
 */
export function cgroupMountSources(layout: CgroupLayout, path: string): CgroupMountSource[] {
  if (layout.mode === "v2") return layout.unified ? [{ name: "", source: `${layout.unified}${path}`, links: [] }] : [];
  const out: CgroupMountSource[] = layout.v1.map((h) => {
    const name = h.mount.slice(h.mount.lastIndexOf("/") + 1);
    const links = name.includes(",") ? name.split(",") : [];
    return { name, source: `${h.mount}${path}`, links };
  });
  if (layout.unified) out.push({ name: layout.unified.slice(layout.unified.lastIndexOf("/") + 1), source: `${layout.unified}${path}`, links: [] });
  return out;
}
