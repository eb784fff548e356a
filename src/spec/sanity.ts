/**
 * Checks on a config.json that the JSON schema cannot express, made after
 * it (src/spec/load.ts validateSpec): each refuses, with one line naming
 * the field, what runc also refuses or what dokrust would otherwise
 * silently misread.  Found by the bad-input corpus (test/corpus/).
 */
import { UsageError } from "../errors.ts";
import type { Spec } from "./types.ts";

const SCHED_POLICIES = ["SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH", "SCHED_ISO", "SCHED_IDLE", "SCHED_DEADLINE"];
const SCHED_FLAGS = ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_RECLAIM", "SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_KEEP_POLICY", "SCHED_FLAG_KEEP_PARAMS", "SCHED_FLAG_UTIL_CLAMP_MIN", "SCHED_FLAG_UTIL_CLAMP_MAX"];

interface IdMap {
  size: number;
}

function checkMappings(where: string, maps: readonly IdMap[] | undefined): void {
  (maps ?? []).forEach((m, i) => {
    if (!(m.size > 0)) throw new UsageError(`${where}/${i}/size: an id mapping must map at least one id (got ${m.size})`);
  });
}

function checkNamespaces(spec: Spec): void {
  const seen = new Set<string>();
  for (const ns of spec.linux?.namespaces ?? []) {
    if (seen.has(ns.type)) throw new UsageError(`linux.namespaces: the ${ns.type} namespace is listed twice`);
    seen.add(ns.type);
  }
}

function checkDevices(spec: Spec): void {
  (spec.linux?.resources?.devices ?? []).forEach((d, i) => {
    for (const key of ["major", "minor"] as const) {
      const v = d[key];
      if (v !== undefined && v !== null && v < -1) throw new UsageError(`linux.resources.devices/${i}/${key}: ${v} is neither a device number nor -1 (any)`);
    }
  });
  (spec.linux?.devices ?? []).forEach((d, i) => {
    if (d.type !== "p" && (d.major === undefined || d.minor === undefined)) {
      throw new UsageError(`linux.devices/${i} (${d.path}): a ${d.type} device needs its major and minor numbers`);
    }
  });
}

function checkScheduler(spec: Spec): void {
  const sched = (spec.process as { scheduler?: { policy?: string; flags?: string[] } } | undefined)?.scheduler;
  if (!sched) return;
  if (sched.policy !== undefined && !SCHED_POLICIES.includes(sched.policy)) {
    throw new UsageError(`process.scheduler.policy: unknown policy ${JSON.stringify(sched.policy)} (${SCHED_POLICIES.join(", ")})`);
  }
  for (const flag of sched.flags ?? []) {
    if (!SCHED_FLAGS.includes(flag)) throw new UsageError(`process.scheduler.flags: unknown flag ${JSON.stringify(flag)}`);
  }
}

function checkMisc(spec: Spec): void {
  const major = /^(\d+)\./.exec(spec.ociVersion ?? "")?.[1];
  if (major !== "1") throw new UsageError(`ociVersion ${JSON.stringify(spec.ociVersion)}: dokrust implements runtime-spec 1.x`);
  const clos = (spec.linux as { intelRdt?: { closID?: string } } | undefined)?.intelRdt?.closID;
  if (clos !== undefined && (clos.includes("/") || clos === "." || clos === "..")) {
    throw new UsageError(`linux.intelRdt.closID: ${JSON.stringify(clos)} must be a plain name`);
  }
  const flags = (spec.linux?.personality as { flags?: string[] } | undefined)?.flags;
  if (flags?.length) throw new UsageError(`linux.personality.flags: ${flags.map((f) => JSON.stringify(f)).join(", ")}: no personality flags are supported`);
}

/** Throw a UsageError for the first problem the schema let through. */
export function checkSpec(spec: Spec): void {
  checkMisc(spec);
  checkNamespaces(spec);
  checkDevices(spec);
  checkScheduler(spec);
  checkMappings("linux.uidMappings", spec.linux?.uidMappings);
  checkMappings("linux.gidMappings", spec.linux?.gidMappings);
  (spec.mounts ?? []).forEach((m, i) => {
    const mount = m as { uidMappings?: IdMap[]; gidMappings?: IdMap[] };
    checkMappings(`mounts/${i}/uidMappings`, mount.uidMappings);
    checkMappings(`mounts/${i}/gidMappings`, mount.gidMappings);
  });
}
