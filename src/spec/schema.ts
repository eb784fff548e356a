/**
 * The JSON schema config.json is validated against, written from the
 * runtime-spec's prose (config.md, config-linux.md) for every field of
 * src/spec/types.ts: types, required fields and enumerations.  Fields the
 * schema does not name are allowed (the spec says unknown properties
 * MUST be ignored).
 */
import { OPERATORS } from "../seccomp/compile.ts";

type Schema = Record<string, unknown>;

const str: Schema = { type: "string" };
const bool: Schema = { type: "boolean" };
const int: Schema = { type: "integer" };
const uint32: Schema = { type: "integer", minimum: 0, maximum: 4294967295 };
const uint64: Schema = { type: "integer", minimum: 0 };
const int64: Schema = { type: "integer" };
const strings: Schema = { type: "array", items: str };
const absPath: Schema = { type: "string", pattern: "^/" };
const stringMap: Schema = { type: "object", additionalProperties: str };

function object(properties: Record<string, Schema>, required: string[] = []): Schema {
  return required.length ? { type: "object", properties, required } : { type: "object", properties };
}

function arrayOf(items: Schema): Schema {
  return { type: "array", items };
}

function oneOfStrings(values: string[]): Schema {
  return { type: "string", enum: values };
}

/*
 * Sub-schemas used several times are definitions referenced with $ref:
 * the generated validator then checks each with one shared function
 * instead of a copy per use (a quarter of the code, and faster to load).
 */
const ref = (name: string): Schema => ({ $ref: `#/$defs/${name}` });

const DEFINITIONS: Record<string, Schema> = {
  capabilities: arrayOf({ type: "string", pattern: "^CAP_[A-Z_]+$" }),
  idMappings: arrayOf(object({ containerID: uint32, hostID: uint32, size: uint32 }, ["containerID", "hostID", "size"])),
  hooks: arrayOf(object({ path: absPath, args: strings, env: strings, timeout: { type: "integer", minimum: 1 } }, ["path"])),
  throttle: arrayOf(object({ major: int64, minor: int64, rate: uint64 }, ["major", "minor", "rate"])),
};
const capabilityList = ref("capabilities");
const idMappings = ref("idMappings");
const hooks = ref("hooks");

const process = object(
  {
    terminal: bool,
    consoleSize: object({ height: uint64, width: uint64 }, ["height", "width"]),
    user: object({ uid: uint32, gid: uint32, umask: uint32, additionalGids: arrayOf(uint32), username: str }, ["uid", "gid"]),
    args: strings,
    commandLine: str,
    env: arrayOf({ type: "string", pattern: "^[^=]+=" }),
    cwd: absPath,
    capabilities: object({
      bounding: capabilityList,
      effective: capabilityList,
      inheritable: capabilityList,
      permitted: capabilityList,
      ambient: capabilityList,
    }),
    rlimits: arrayOf(object({ type: { type: "string", pattern: "^RLIMIT_[A-Z]+$" }, soft: uint64, hard: uint64 }, ["type", "soft", "hard"])),
    noNewPrivileges: bool,
    apparmorProfile: str,
    oomScoreAdj: { type: "integer", minimum: -1000, maximum: 1000 },
    selinuxLabel: str,
    ioPriority: object(
      { class: oneOfStrings(["IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE"]), priority: int },
      ["class"],
    ),
    scheduler: object({ policy: str, nice: int, priority: int, flags: strings, runtime: uint64, deadline: uint64, period: uint64 }, ["policy"]),
    execCPUAffinity: object({ initial: str, final: str }),
  },
  ["cwd", "user"],
);

const mount = object(
  { destination: str, source: str, type: str, options: strings, uidMappings: idMappings, gidMappings: idMappings },
  ["destination"],
);

const deviceRule = object(
  { allow: bool, type: oneOfStrings(["a", "b", "c"]), major: int64, minor: int64, access: { type: "string", pattern: "^[rwm]{0,3}$" } },
  ["allow"],
);

const device = object(
  { type: oneOfStrings(["b", "c", "u", "p"]), path: absPath, major: int64, minor: int64, fileMode: uint32, uid: uint32, gid: uint32 },
  ["type", "path"],
);

const throttle = ref("throttle");

const resources = object({
  devices: arrayOf(deviceRule),
  memory: object({
    limit: int64,
    reservation: int64,
    swap: int64,
    kernel: int64,
    kernelTCP: int64,
    swappiness: uint64,
    disableOOMKiller: bool,
    useHierarchy: bool,
    checkBeforeUpdate: bool,
  }),
  cpu: object({
    shares: uint64,
    quota: int64,
    burst: uint64,
    period: uint64,
    realtimeRuntime: int64,
    realtimePeriod: uint64,
    cpus: str,
    mems: str,
    idle: int64,
  }),
  pids: object({ limit: int64 }, ["limit"]),
  blockIO: object({
    weight: { type: "integer", minimum: 10, maximum: 1000 },
    leafWeight: { type: "integer", minimum: 10, maximum: 1000 },
    weightDevice: arrayOf(object({ major: int64, minor: int64, weight: int, leafWeight: int }, ["major", "minor"])),
    throttleReadBpsDevice: throttle,
    throttleWriteBpsDevice: throttle,
    throttleReadIOPSDevice: throttle,
    throttleWriteIOPSDevice: throttle,
  }),
  hugepageLimits: arrayOf(object({ pageSize: { type: "string", pattern: "^[1-9][0-9]*[KMG]B$" }, limit: uint64 }, ["pageSize", "limit"])),
  network: object({ classID: uint32, priorities: arrayOf(object({ name: str, priority: uint32 }, ["name", "priority"])) }),
  rdma: { type: "object", additionalProperties: object({ hcaHandles: uint32, hcaObjects: uint32 }) },
  unified: stringMap,
});

const SECCOMP_ACTIONS = [
  "SCMP_ACT_KILL",
  "SCMP_ACT_KILL_PROCESS",
  "SCMP_ACT_KILL_THREAD",
  "SCMP_ACT_TRAP",
  "SCMP_ACT_ERRNO",
  "SCMP_ACT_TRACE",
  "SCMP_ACT_ALLOW",
  "SCMP_ACT_LOG",
  "SCMP_ACT_NOTIFY",
];
// the comparisons the seccomp compiler implements are the spec's list
const SECCOMP_OPERATORS = [...OPERATORS];

const seccomp = object(
  {
    defaultAction: oneOfStrings(SECCOMP_ACTIONS),
    defaultErrnoRet: uint32,
    architectures: arrayOf({ type: "string", pattern: "^SCMP_ARCH_[A-Z0-9_]+$" }),
    flags: arrayOf({ type: "string", pattern: "^SECCOMP_FILTER_FLAG_[A-Z_]+$" }),
    listenerPath: str,
    listenerMetadata: str,
    syscalls: arrayOf(
      object(
        {
          names: { type: "array", items: str, minItems: 1 },
          action: oneOfStrings(SECCOMP_ACTIONS),
          errnoRet: uint32,
          args: arrayOf(object({ index: uint32, value: uint64, valueTwo: uint64, op: oneOfStrings(SECCOMP_OPERATORS) }, ["index", "value", "op"])),
        },
        ["names", "action"],
      ),
    ),
  },
  ["defaultAction"],
);

export const NAMESPACE_TYPES = ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"];

const linux = object({
  namespaces: arrayOf(object({ type: oneOfStrings(NAMESPACE_TYPES), path: absPath }, ["type"])),
  uidMappings: idMappings,
  gidMappings: idMappings,
  timeOffsets: { type: "object", additionalProperties: object({ secs: int64, nanosecs: uint32 }) },
  devices: arrayOf(device),
  cgroupsPath: str,
  resources,
  rootfsPropagation: oneOfStrings(["private", "shared", "slave", "unbindable", "rprivate", "rshared", "rslave", "runbindable"]),
  seccomp,
  sysctl: stringMap,
  maskedPaths: arrayOf(absPath),
  readonlyPaths: arrayOf(absPath),
  mountLabel: str,
  personality: object({ domain: oneOfStrings(["LINUX", "LINUX32"]), flags: strings }, ["domain"]),
  intelRdt: { type: "object" },
});

/** The schema of config.json. */
export const CONFIG_SCHEMA: Schema = {
  $defs: DEFINITIONS,
  ...object(
  {
    ociVersion: { type: "string", pattern: "^[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]+)?(\\+[0-9A-Za-z.-]+)?$" },
    process,
    root: object({ path: str, readonly: bool }, ["path"]),
    hostname: str,
    domainname: str,
    mounts: arrayOf(mount),
    hooks: object({
      prestart: hooks,
      createRuntime: hooks,
      createContainer: hooks,
      startContainer: hooks,
      poststart: hooks,
      poststop: hooks,
    }),
    annotations: stringMap,
    linux,
  },
  ["ociVersion"],
  ),
};
