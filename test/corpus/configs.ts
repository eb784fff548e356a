/**
 * A corpus of malformed config.json files for `create` (issue 7, promise
 * 4): wrong types, missing required fields, huge and negative numbers,
 * invalid UTF-8, deeply nested and very large documents, unknown enum
 * values, and files that are not JSON at all.  Each case is invalid: the
 * runtime must refuse it with one line naming the problem.
 */
import { defaultSpec } from "../../src/spec/defaults.ts";

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface ConfigCase {
  name: string;
  /** The bytes of config.json. */
  bytes: Uint8Array;
}

/** The valid base: defaultSpec() with a root path filled in by the test. */
function base(rootfs: string): Record<string, Json> {
  const spec = defaultSpec();
  spec.process!.terminal = false;
  spec.process!.args = ["true"];
  spec.root = { path: rootfs, readonly: true };
  return JSON.parse(JSON.stringify(spec)) as Record<string, Json>;
}

/** Set (or with `undefined`, delete) the value at a dotted path; numbers index arrays. */
function setPath(doc: Record<string, Json>, path: string, value: Json | undefined): void {
  const keys = path.split(".");
  let node: Json = doc;
  for (const k of keys.slice(0, -1)) {
    const obj = node as Record<string, Json>;
    if (obj[k] === undefined || obj[k] === null || typeof obj[k] !== "object") obj[k] = /^\d+$/.test(keys[keys.indexOf(k) + 1] ?? "") ? [] : {};
    node = obj[k]!;
  }
  const last = keys[keys.length - 1]!;
  if (value === undefined) delete (node as Record<string, Json>)[last];
  else (node as Record<string, Json>)[last] = value;
}

const enc = (s: string) => new TextEncoder().encode(s);

/** Fields with their JSON type: each gets every value of another type. */
const TYPED: Array<[string, "string" | "number" | "boolean" | "array" | "object"]> = [
  ["ociVersion", "string"], ["process", "object"], ["process.args", "array"], ["process.args.0", "string"],
  ["process.env", "array"], ["process.cwd", "string"], ["process.terminal", "boolean"], ["process.user", "object"],
  ["process.user.uid", "number"], ["process.user.gid", "number"], ["process.capabilities", "object"],
  ["process.capabilities.bounding", "array"], ["process.rlimits", "array"], ["process.rlimits.0.hard", "number"],
  ["process.noNewPrivileges", "boolean"], ["root", "object"], ["root.path", "string"], ["root.readonly", "boolean"],
  ["hostname", "string"], ["mounts", "array"], ["mounts.0", "object"], ["mounts.0.destination", "string"],
  ["mounts.0.options", "array"], ["linux", "object"], ["linux.namespaces", "array"], ["linux.namespaces.0.type", "string"],
  ["linux.maskedPaths", "array"], ["linux.resources", "object"], ["linux.resources.devices", "array"], ["annotations", "object"],
];
const VALUES: Record<string, Json[]> = {
  string: ["x", ""],
  number: [42, -7],
  boolean: [true],
  array: [[], [1, "a"]],
  object: [{}, { a: 1 }],
  null: [null],
};

function wrongTypes(rootfs: string): ConfigCase[] {
  const out: ConfigCase[] = [];
  for (const [path, type] of TYPED) {
    for (const [other, values] of Object.entries(VALUES)) {
      if (other === type) continue;
      for (const v of values) {
        if (path === "ociVersion" && other === "string") continue;
        const doc = base(rootfs);
        setPath(doc, path, v);
        out.push({ name: `${path} = ${JSON.stringify(v)} (a ${other}, not a ${type})`, bytes: enc(JSON.stringify(doc)) });
      }
    }
  }
  return out;
}

/** Required fields, removed one at a time. */
const REQUIRED = ["ociVersion", "process.cwd", "process.args", "mounts.0.destination", "linux.namespaces.0.type", "process.rlimits.0.type", "process.rlimits.0.hard", "process.rlimits.0.soft", "process.user.uid", "process.user.gid", "root.path", "root"];

/** [path, value, what]: values of the right type that are out of range or unknown. */
const BAD_VALUES: Array<[string, Json, string]> = [
  ["process.user.uid", -1, "negative uid"], ["process.user.gid", -1, "negative gid"], ["process.user.uid", 2 ** 32, "uid beyond 32 bits"],
  ["process.user.uid", 1e300, "huge uid"], ["process.user.uid", 1.5, "fractional uid"], ["process.user.umask", -1, "negative umask"],
  ["process.rlimits.0.hard", -1, "negative rlimit"], ["process.rlimits.0.soft", 2 ** 65, "rlimit beyond 64 bits"],
  ["process.rlimits.0.type", "RLIMIT_BOGUS", "unknown rlimit"], ["process.rlimits.0.type", "", "empty rlimit name"],
  ["process.capabilities.effective.0", 7, "capability not a string"],
  ["linux.personality", { domain: "LINUX_BOGUS" }, "unknown personality domain"],
  ["process.oomScoreAdj", 5000, "oom_score_adj beyond 1000"], ["process.oomScoreAdj", -5000, "oom_score_adj below -1000"],
  ["process.consoleSize", { height: -1, width: 5 }, "negative console size"], ["process.args", [], "empty args"],
  ["process.cwd", "relative/dir", "relative cwd"], ["process.cwd", "", "empty cwd"],
  ["process.env.0", "NOEQUALS", "env without ="], ["process.env.0", "=value", "env with empty name"],
  ["process.apparmorProfile", 7, "apparmor profile not a string"], ["process.ioPriority", { class: "IOPRIO_CLASS_BOGUS", priority: 1 }, "unknown io priority class"],
  ["process.scheduler", { policy: "SCHED_BOGUS" }, "unknown scheduler policy"],
  ["linux.namespaces.0.type", "bogus", "unknown namespace"], ["linux.namespaces.1.type", "pid", "duplicate namespace"],
  ["linux.namespaces.0.path", "relative/ns", "relative namespace path"], ["linux.rootfsPropagation", "weird", "unknown propagation"],
  ["linux.resources.memory.limit", -5, "memory limit below -1"], ["linux.resources.memory.limit", 1e30, "huge memory limit"],
  ["linux.resources.memory.swappiness", 500, "swappiness above 100"], ["linux.resources.pids.limit", 1.5, "fractional pids limit"],
  ["linux.resources.cpu.shares", -1, "negative cpu shares"], ["linux.resources.cpu.quota", 1e300, "huge cpu quota"],
  ["linux.resources.cpu.cpus", "0-,x", "bad cpuset"], ["linux.resources.blockIO.weight", 5000, "blkio weight out of range"],
  ["linux.resources.devices.0.type", "x", "unknown device type"], ["linux.resources.devices.0.access", "rwz", "bad device access"],
  ["linux.resources.devices.0.major", -5, "negative device major"], ["linux.devices", [{ path: "/dev/x", type: "q", major: 1, minor: 1 }], "unknown device node type"],
  ["linux.devices", [{ path: "relative", type: "c", major: 1, minor: 1 }], "relative device path"], ["linux.devices", [{ path: "/dev/x", type: "c" }], "char device without numbers"],
  ["linux.uidMappings", [{ containerID: 0, hostID: -1, size: 1 }], "negative host id"], ["linux.uidMappings", [{ containerID: 0, hostID: 0, size: 0 }], "empty id mapping"],
  ["linux.seccomp", { defaultAction: "SCMP_ACT_BOGUS" }, "unknown seccomp action"], ["linux.seccomp", { defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_BOGUS"] }, "unknown seccomp arch"],
  ["linux.seccomp", { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["read"], action: "SCMP_ACT_ERRNO", args: [{ index: 9, value: 0, op: "SCMP_CMP_EQ" }] }] }, "seccomp arg index 9"],
  ["linux.seccomp", { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["read"], action: "SCMP_ACT_ERRNO", args: [{ index: 0, value: 0, op: "SCMP_CMP_BOGUS" }] }] }, "unknown seccomp op"],
  ["linux.seccomp", { defaultAction: "SCMP_ACT_NOTIFY" }, "seccomp notify without a listener"],
  ["linux.sysctl", { "kernel.bogus/../x": "1" }, "sysctl with a path"], ["linux.sysctl", { "vm.drop_caches": 3 }, "sysctl value not a string"],
  ["linux.cgroupsPath", "../../escape", "cgroups path with .."], ["linux.cgroupsPath", "bad:slice:name", "bad systemd slice"],
  ["linux.intelRdt", { closID: "../x" }, "rdt clos with a path"], ["linux.timeOffsets", { monotonic: { secs: "x" } }, "time offset not a number"],
  ["mounts.0.destination", "relative", "relative mount destination"], ["mounts.0.destination", "", "empty mount destination"],
  ["mounts.0.type", "bogusfs", "unknown file system type"], ["mounts.0.options", ["bogus-option"], "unknown mount option"],
  ["mounts.0.options", ["size=-1"], "negative tmpfs size"], ["mounts.0.uidMappings", [{ containerID: 0, hostID: 0, size: -1 }], "negative mount id map"],
  ["hostname", "a".repeat(65), "hostname over 64 bytes"], 
  ["domainname", "d".repeat(70), "domain name over 64 bytes"], ["ociVersion", "9.9.9", "unsupported version"], ["ociVersion", "", "empty version"],
  ["hooks.prestart", [{ path: "relative" }], "relative hook path"], ["hooks.prestart", [{ path: "/bin/true", timeout: 0 }], "hook timeout 0"],
  ["hooks.prestart", [{ path: "/bin/true", timeout: -3 }], "negative hook timeout"], ["annotations", { key: 5 }, "annotation value not a string"],
  ["process.user.additionalGids", [-1], "negative additional gid"], ["process.rlimits.1", { type: "RLIMIT_NOFILE", hard: 1, soft: 1 }, "duplicate rlimit"],
  ["process.rlimits.0.soft", 2048, "soft rlimit above hard"], ["process.selinuxLabel", 5, "selinux label not a string"],
  ["linux.mountLabel", 5, "mount label not a string"], ["linux.readonlyPaths.0", "relative", "relative read-only path"],
  ["linux.maskedPaths.0", 5, "masked path not a string"],
  ["linux.resources.hugepageLimits", [{ pageSize: "3KB", limit: 1 }], "bad huge page size"], ["linux.resources.network", { classID: -1 }, "negative net class"],
  ["linux.resources.unified", { "../x": "1" }, "unified key with a path"], ["linux.personality", { domain: "LINUX", flags: ["BOGUS"] }, "unknown personality flag"],
  ["root.path", "/nonexistent/dokrust-test-root", "missing root directory"], ["root.path", "", "empty root path"],
];

function badValues(rootfs: string): ConfigCase[] {
  return BAD_VALUES.map(([path, v, what]) => {
    const doc = base(rootfs);
    setPath(doc, path, v);
    return { name: `${what}: ${path} = ${JSON.stringify(v).slice(0, 60)}`, bytes: enc(JSON.stringify(doc)) };
  });
}

function missing(rootfs: string): ConfigCase[] {
  return REQUIRED.map((path) => {
    const doc = base(rootfs);
    setPath(doc, path, undefined);
    return { name: `missing ${path}`, bytes: enc(JSON.stringify(doc)) };
  });
}

function notJson(rootfs: string): ConfigCase[] {
  const valid = JSON.stringify(base(rootfs));
  const utf8 = (bytes: number[]) => {
    const text = enc(valid.replace('"dokrust"', '"HOSTNAME"'));
    const at = new TextDecoder().decode(text).indexOf("HOSTNAME");
    return new Uint8Array([...text.slice(0, at), ...bytes, ...text.slice(at + 8)]);
  };
  let deep = '"x"';
  for (let i = 0; i < 100_000; i++) deep = `[${deep}]`;
  const deepObject = valid.replace(/}$/, `,"annotations":{"a":${"{\"b\":".repeat(5000)}1${"}".repeat(5000)}}}`);
  return [
    { name: "an empty file", bytes: enc("") },
    { name: "whitespace only", bytes: enc("   \n") },
    { name: "null", bytes: enc("null") },
    { name: "an array", bytes: enc("[]") },
    { name: "a number", bytes: enc("1") },
    { name: "a string", bytes: enc('"config"') },
    { name: "truncated in the middle", bytes: enc(valid.slice(0, valid.length / 2)) },
    { name: "a trailing comma", bytes: enc(valid.replace(/}$/, ",}")) },
    { name: "two documents", bytes: enc(`${valid}${valid}`) },
    { name: "a NUL byte", bytes: enc(valid.replace('"ociVersion"', '"oci\u0000Version"').replace(/^{/, "{\u0000")) },
    { name: "invalid UTF-8 (0xff) in the hostname", bytes: utf8([0xff, 0xfe]) },
    { name: "a lone continuation byte in the hostname", bytes: utf8([0x80]) },
    { name: "an overlong encoding of / in the hostname", bytes: utf8([0xc0, 0xaf]) },
    { name: "a UTF-16 surrogate encoded in UTF-8", bytes: utf8([0xed, 0xa0, 0x80]) },
    { name: "a BOM then JSON", bytes: new Uint8Array([0xef, 0xbb, 0xbf, ...enc(valid)]) },
    { name: "a UTF-16 file", bytes: new Uint8Array([0xff, 0xfe, ...[...valid].flatMap((c) => [c.charCodeAt(0) & 0xff, 0])]) },
    { name: "100000 nested arrays", bytes: enc(deep) },
    { name: "an annotation nested 5000 objects deep", bytes: enc(deepObject) },
    { name: "a 20 MB annotation and a bad field after it", bytes: enc(valid.replace(/}$/, `,"annotations":{"big":"${"x".repeat(20 << 20)}"},"hostname":5}`)) },
    { name: "200000 mounts, one invalid", bytes: enc(JSON.stringify({ ...base(rootfs), mounts: [...Array.from({ length: 200_000 }, () => ({ destination: "/tmp", type: "tmpfs", source: "tmpfs" })), { destination: 5 }] })) },
    { name: "a number with 10000 digits", bytes: enc(valid.replace('"uid":0', `"uid":${"9".repeat(10000)}`)) },
    { name: "unquoted keys", bytes: enc(valid.replace('"ociVersion"', "ociVersion")) },
    { name: "single quotes", bytes: enc(valid.replace('"ociVersion"', "'ociVersion'")) },
    { name: "a comment", bytes: enc(`// config\n${valid}`) },
    { name: "NaN", bytes: enc(valid.replace('"uid":0', '"uid":NaN')) },
  ];
}

/** Every config case; the valid base points root.path at `rootfs`. */
export function configCases(rootfs: string): ConfigCase[] {
  return [...wrongTypes(rootfs), ...missing(rootfs), ...badValues(rootfs), ...notJson(rootfs)];
}

/** Command lines of the dokrust face that must be refused (ROOTFS is replaced by a real rootfs). */
export const DOKRUST_ARGS: string[][] = [
  ["--bogus"], ["-r"], ["-r", "/nonexistent/dokrust-test"], ["-r", "ROOTFS", "--memory", "abc", "--", "true"], ["-r", "ROOTFS", "--memory", "-5m", "--", "true"],
  ["-r", "ROOTFS", "--memory", "99999999999999999999g", "--", "true"], ["-r", "ROOTFS", "--cpus", "-1", "--", "true"], ["-r", "ROOTFS", "--cpus", "abc", "--", "true"],
  ["-r", "ROOTFS", "--cpus", "1e400", "--", "true"], ["-r", "ROOTFS", "--pids-limit", "x", "--", "true"], ["-r", "ROOTFS", "--pids-limit", "-7", "--", "true"],
  ["-r", "ROOTFS", "-q", "bogus", "--", "true"], ["-r", "ROOTFS", "-q", "pids:pids.max", "--", "true"], ["-r", "ROOTFS", "-q", "nosuch:file:1", "--", "true"],
  ["-r", "ROOTFS", "-q", "pids:../../escape:1", "--", "true"], ["-r", "ROOTFS", "-q", "pids:pids.max:1::", "--", "true"], ["-r", "ROOTFS", "-m", "nocolon", "--", "true"],
  ["-r", "ROOTFS", "-m", "/nonexistent/dokrust-test:/x", "--", "true"], ["-r", "ROOTFS", "-m", "/tmp:relative", "--", "true"], ["-r", "ROOTFS", "-m", "/tmp:/x:bogus", "--", "true"],
  ["-r", "ROOTFS", "-u", "abc", "--", "true"], ["-r", "ROOTFS", "-u", "-1", "--", "true"], ["-r", "ROOTFS", "-u", "1:2:3", "--", "true"], ["-r", "ROOTFS", "-u", "99999999999", "--", "true"],
  ["-r", "ROOTFS", "-e", "=x", "--", "true"], ["-r", "ROOTFS", "-w", "relative", "--", "true"], ["-r", "ROOTFS", "-p", "99999:80", "--", "true"], ["-r", "ROOTFS", "-p", "abc", "--", "true"],
  ["-r", "ROOTFS", "--cap-add", "CAP_BOGUS", "--", "true"], ["-r", "ROOTFS", "--cap-drop", "nothing", "--", "true"], ["-r", "ROOTFS", "--net", "bogus", "--", "true"],
  ["-r", "ROOTFS", "--net", "container:dokrust-test-nosuch", "--", "true"], ["-r", "ROOTFS", "--security-opt", "bogus", "--", "true"],
  ["-r", "ROOTFS", "--security-opt", "seccomp=/nonexistent/dokrust-test.json", "--", "true"], ["-r", "ROOTFS", "--name", "bad name!", "--", "true"],
  ["-r", "ROOTFS", "-n", "a".repeat(100), "--", "true"], ["-r", "ROOTFS", "-n", "", "--", "true"], ["-r", "ROOTFS", "-c"], ["-r", "ROOTFS", "--", ""],
  ["-r", "ROOTFS", "--", "/no/such/dokrust-test-binary"], ["-r", "ROOTFS", "--memory", "", "--", "true"],
  ["-r", "ROOTFS", "-q", ":::", "--", "true"], ["-r", "ROOTFS", "-m", ":", "--", "true"],
  ["logs"], ["logs", "dokrust-test-nosuch"], ["rm"], ["rm", "dokrust-test-nosuch"], ["stop", "-t", "x", "dokrust-test-nosuch"], ["kill", "-s", "BOGUS", "dokrust-test-nosuch"],
  ["wait", "dokrust-test-nosuch"], ["exec"], ["attach", "dokrust-test-nosuch"], ["network", "bogus"], ["image", "bogus"], ["pull"],
];

/** Command lines of the OCI face (after `--root ROOT`) that must be refused. */
export const OCI_ARGS: string[][] = [
  ["bogus"], ["create"], ["create", "--bundle", "/nonexistent/dokrust-test", "dokrust-test-x"], ["create", "--bogus", "dokrust-test-x"], ["create", "../escape"],
  ["create", "--preserve-fds", "x", "dokrust-test-x"], ["create", "--preserve-fds", "-1", "dokrust-test-x"], ["create", "--no-pivot", "dokrust-test-x"],
  ["create", "--console-socket", "/nonexistent/dokrust-test.sock", "dokrust-test-x"], ["create", "a/b"], ["create", ".."], ["create", "x".repeat(5000)],
  ["start"], ["start", "dokrust-test-nosuch"], ["start", "a", "b"], ["state"], ["state", "dokrust-test-nosuch"], ["state", "../../etc"], ["kill"],
  ["kill", "dokrust-test-nosuch"], ["kill", "dokrust-test-nosuch", "BOGUS"], ["kill", "dokrust-test-nosuch", "99999"], ["delete"], ["delete", "dokrust-test-nosuch"],
  ["list", "--format", "xml"], ["list", "extra"], ["ps", "dokrust-test-nosuch"], ["pause", "dokrust-test-nosuch"], ["resume", "dokrust-test-nosuch"],
  ["exec"], ["exec", "dokrust-test-nosuch"], ["exec", "dokrust-test-nosuch", "true"], ["exec", "--process", "/nonexistent/dokrust-test.json", "dokrust-test-nosuch"],
  ["exec", "-u", "abc", "dokrust-test-nosuch", "true"], ["update", "dokrust-test-nosuch"], ["update", "--memory", "abc", "dokrust-test-nosuch"], ["events", "dokrust-test-nosuch"],
  ["spec", "--bogus"], ["run"], ["run", "--bundle", "/nonexistent/dokrust-test", "dokrust-test-x"], ["checkpoint", "dokrust-test-nosuch"],
  ["--log-format", "xml", "list"], ["--rootless", "true", "list"], ["--rootless", "maybe", "list"], ["--systemd-cgroup", "list"], ["--bogus", "list"],
];
