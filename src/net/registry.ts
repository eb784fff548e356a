/**
 * Finding a running container by name, for `--net container:NAME` and
 * `-k NAME`.
 *
 * The dokrust face keeps one directory per container under the state
 * root (`$DOKRUST_ROOT`, /run/dokrust), named by its random id; once the
 * container runs, src/runtime/run.ts writes `container.json` there
 * (written here: name, hostname, pid and the pid's start time, network
 * mode, the host file bound over its /etc/hosts).  Containers of the OCI
 * face keep `state.json` in a directory named by their id (written by
 * src/runtime/state.ts; only `pid` and `pidStartTime` are read here).  A
 * name matches a dokrust container's --name, then an id (either face),
 * then a dokrust container's hostname.
 */
import { readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";

/** The start time of a process (/proc/<pid>/stat field 22), or undefined when there is none. */
export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** What the dokrust face records about a running container. */
export interface ContainerRecord {
  id: string;
  name?: string;
  hostname: string;
  pid: number;
  startTime: string;
  /** The --net value it runs with. */
  net: string;
  /** The host file bound over its /etc/hosts, if any. */
  hostsFile?: string;
}

/** Record a running container (atomically) in its state directory. */
export function registerContainer(stateDir: string, record: ContainerRecord): void {
  const tmp = `${stateDir}/container.json.tmp`;
  writeFileSync(tmp, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  renameSync(tmp, `${stateDir}/container.json`);
}

function readJson(path: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** A running container found by name. */
export interface Found {
  pid: number;
  startTime: string;
  record?: ContainerRecord;
}

function alive(pid: unknown, startTime: unknown): boolean {
  return typeof pid === "number" && pid > 0 && startTimeOf(pid) === startTime;
}

/** The running container called `name` under the state root, or undefined. */
export function findRunning(stateRoot: string, name: string): Found | undefined {
  let ids: string[] = [];
  try {
    ids = readdirSync(stateRoot);
  } catch {
    return undefined;
  }
  const records: ContainerRecord[] = [];
  for (const id of ids) {
    const r = readJson(`${stateRoot}/${id}/container.json`) as ContainerRecord | undefined;
    if (r && alive(r.pid, r.startTime)) records.push(r);
  }
  const byName = records.find((r) => r.name === name) ?? records.find((r) => r.id === name);
  if (byName) return { pid: byName.pid, startTime: byName.startTime, record: byName };
  if (ids.includes(name)) {
    const oci = readJson(`${stateRoot}/${name}/state.json`);
    if (oci && alive(oci.pid, oci.pidStartTime)) return { pid: oci.pid as number, startTime: oci.pidStartTime as string };
  }
  const byHost = records.find((r) => r.hostname === name);
  return byHost ? { pid: byHost.pid, startTime: byHost.startTime, record: byHost } : undefined;
}
