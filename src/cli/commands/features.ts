/**
 * `features`: what this runtime implements, as the runtime-spec's
 * features document (features.md) describes it.  Only what dokrust
 * really carries out is listed.
 */
import { UsageError } from "../../errors.ts";
import { CAPABILITIES, MOUNT_OPTIONS, PROPAGATION_OPTIONS } from "../../plan/linux.ts";
import { OCI_VERSION } from "../../spec/defaults.ts";
import { NAMESPACE_TYPES } from "../../spec/schema.ts";
import { seccompFeatures } from "../../seccomp/index.ts";
import type { Globals } from "./common.ts";

/** The features document. */
export function features(): Record<string, unknown> {
  return {
    ociVersionMin: "1.0.0",
    ociVersionMax: OCI_VERSION,
    hooks: ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
    mountOptions: [...new Set([...Object.keys(MOUNT_OPTIONS), ...Object.keys(PROPAGATION_OPTIONS)])].sort(),
    linux: {
      namespaces: NAMESPACE_TYPES,
      capabilities: [...CAPABILITIES],
      cgroup: { v1: true, v2: true, systemd: false, systemdUser: false, rdma: false },
      seccomp: seccompFeatures(),
      apparmor: { enabled: false },
      selinux: { enabled: false },
      intelRdt: { enabled: false },
      mountExtensions: { idmap: { enabled: false } },
    },
    annotations: { "org.opencontainers.runtime-spec.features": "dokrust" },
  };
}

export async function run(args: string[], _globals: Globals): Promise<number> {
  if (args.length) throw new UsageError(`features: unexpected arguments: ${args.join(" ")}`);
  process.stdout.write(`${JSON.stringify(features(), null, "    ")}\n`);
  return 0;
}
