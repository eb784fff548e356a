/**
 * The OCI runtime-spec configuration (config.json), Linux part, as
 * TypeScript types.  Field names and meaning follow the runtime-spec's
 * config.md and config-linux.md; the JSON schema in the same repository
 * is what config.json files are validated against.
 */

export interface Spec {
  ociVersion: string;
  process?: Process;
  root?: Root;
  hostname?: string;
  domainname?: string;
  mounts?: Mount[];
  hooks?: Hooks;
  annotations?: Record<string, string>;
  linux?: Linux;
}

export interface Root {
  path: string;
  readonly?: boolean;
}

export interface Process {
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  user: User;
  args?: string[];
  commandLine?: string;
  env?: string[];
  cwd: string;
  capabilities?: Capabilities;
  rlimits?: Rlimit[];
  noNewPrivileges?: boolean;
  apparmorProfile?: string;
  oomScoreAdj?: number;
  selinuxLabel?: string;
  ioPriority?: { class: string; priority?: number };
  scheduler?: Record<string, unknown>;
  execCPUAffinity?: { initial?: string; final?: string };
}

export interface User {
  uid: number;
  gid: number;
  umask?: number;
  additionalGids?: number[];
  username?: string;
}

export interface Capabilities {
  bounding?: string[];
  effective?: string[];
  inheritable?: string[];
  permitted?: string[];
  ambient?: string[];
}

export interface Rlimit {
  type: string;
  soft: number;
  hard: number;
}

export interface Mount {
  destination: string;
  source?: string;
  type?: string;
  options?: string[];
  uidMappings?: IdMapping[];
  gidMappings?: IdMapping[];
}

export interface Hook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export interface Hooks {
  prestart?: Hook[];
  createRuntime?: Hook[];
  createContainer?: Hook[];
  startContainer?: Hook[];
  poststart?: Hook[];
  poststop?: Hook[];
}

export interface IdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface Namespace {
  type: string;
  path?: string;
}

export interface Device {
  type: string;
  path: string;
  major?: number;
  minor?: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

export interface DeviceRule {
  allow: boolean;
  type?: string;
  major?: number;
  minor?: number;
  access?: string;
}

export interface Resources {
  devices?: DeviceRule[];
  memory?: {
    limit?: number;
    reservation?: number;
    swap?: number;
    kernel?: number;
    kernelTCP?: number;
    swappiness?: number;
    disableOOMKiller?: boolean;
    useHierarchy?: boolean;
    checkBeforeUpdate?: boolean;
  };
  cpu?: {
    shares?: number;
    quota?: number;
    burst?: number;
    period?: number;
    realtimeRuntime?: number;
    realtimePeriod?: number;
    cpus?: string;
    mems?: string;
    idle?: number;
  };
  pids?: { limit: number };
  blockIO?: {
    weight?: number;
    leafWeight?: number;
    weightDevice?: Array<{ major: number; minor: number; weight?: number; leafWeight?: number }>;
    throttleReadBpsDevice?: ThrottleDevice[];
    throttleWriteBpsDevice?: ThrottleDevice[];
    throttleReadIOPSDevice?: ThrottleDevice[];
    throttleWriteIOPSDevice?: ThrottleDevice[];
  };
  hugepageLimits?: Array<{ pageSize: string; limit: number }>;
  network?: { classID?: number; priorities?: Array<{ name: string; priority: number }> };
  rdma?: Record<string, { hcaHandles?: number; hcaObjects?: number }>;
  unified?: Record<string, string>;
}

export interface ThrottleDevice {
  major: number;
  minor: number;
  rate: number;
}

export interface Seccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls?: SeccompRule[];
}

export interface SeccompRule {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: Array<{ index: number; value: number; valueTwo?: number; op: string }>;
}

export interface Linux {
  namespaces?: Namespace[];
  uidMappings?: IdMapping[];
  gidMappings?: IdMapping[];
  timeOffsets?: Record<string, { secs?: number; nanosecs?: number }>;
  devices?: Device[];
  cgroupsPath?: string;
  resources?: Resources;
  rootfsPropagation?: string;
  seccomp?: Seccomp;
  sysctl?: Record<string, string>;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  mountLabel?: string;
  personality?: { domain: string; flags?: string[] };
  intelRdt?: Record<string, unknown>;
}
