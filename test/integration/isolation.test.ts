/**
 * What a container is isolated from, seen from inside it: namespaces,
 * network, the mount tree after pivot_root, /dev, masked and read-only
 * paths, capabilities, and the /etc files dokrust provides without
 * touching the rootfs on disk.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync } from "node:fs";
import {
  BUSYBOX,
  DEBIAN,
  capabilities,
  dokrust,
  fixtureCopy,
  haveDebian,
  hostNamespace,
  parseMountinfo,
  ready,
  sh,
  useLeakCheck,
} from "./helpers.ts";

useLeakCheck();

const FIXTURES: Array<[string, string]> = [["busybox", BUSYBOX], ...(haveDebian ? [["debian", DEBIAN] as [string, string]] : [])];

/** docker's default capability set as a mask (CapEff 00000000a80425fb). */
const DOCKER_CAPS = 0xa80425fbn;

/** runc's default masked paths, and the read-only ones. */
const MASKED = [
  "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
  "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
];
const READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/** Where a container may have mounts, and nowhere else. */
const BASE_MOUNTS = ["/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"];
/** Masked by docker too, beyond runc's list. */
const EXTRA_MASKED = ["/proc/interrupts"];

describe.skipIf(!ready)("isolation", () => {
  for (const [name, rootfs] of FIXTURES) {
    test(`new pid, mount, uts, ipc, network and cgroup namespaces; the user namespace is the host's (${name})`, async () => {
      const kinds = ["pid", "mnt", "uts", "ipc", "net", "cgroup", "user"];
      const r = await dokrust(["-r", rootfs, ...sh(kinds.map((k) => `readlink /proc/self/ns/${k}`).join("; "))]);
      expect(r.code).toBe(0);
      const inside = r.stdout.trim().split("\n");
      expect(inside).toHaveLength(kinds.length);
      kinds.forEach((kind, i) => {
        expect(inside[i]).toMatch(new RegExp(`^${kind}:\\[\\d+\\]$`));
        if (kind === "user") expect(inside[i]).toBe(hostNamespace(kind));
        else expect(inside[i]).not.toBe(hostNamespace(kind));
      });
    });

    test(`with --net none the network namespace holds only lo, and lo is up (${name})`, async () => {
      const r = await dokrust(["-r", rootfs, "--net", "none", ...sh("ls /sys/class/net; cat /sys/class/net/lo/flags; tail -n +3 /proc/net/dev | cut -d: -f1")]);
      expect(r.code).toBe(0);
      const [links, flags, ...devices] = r.stdout.trim().split("\n");
      expect(links).toBe("lo");
      expect(Number(flags) & 1).toBe(1); // IFF_UP
      expect(devices.map((d) => d.trim())).toEqual(["lo"]);
    });

    test(`pivot_root leaves only the container's mounts, with the usual flags (${name})`, async () => {
      const r = await dokrust(["-r", rootfs, ...sh("cat /proc/self/mountinfo")]);
      expect(r.code).toBe(0);
      const mounts = parseMountinfo(r.stdout);
      const allowed = new Set([...BASE_MOUNTS, ...MASKED, ...EXTRA_MASKED, ...READONLY]);
      for (const m of mounts) expect(allowed.has(m.point) ? m.point : `unexpected mount ${m.point} (${m.root})`).toBe(m.point);
      const at = (point: string) => mounts.filter((m) => m.point === point);
      for (const point of BASE_MOUNTS) expect(at(point)).toHaveLength(1);
      // The old root is gone: one root, the rootfs itself.
      expect(at("/")[0]!.root).toBe(rootfs);
      const proc = at("/proc")[0]!;
      expect([proc.fstype, ...proc.options.filter((o) => ["rw", "nosuid", "nodev", "noexec"].includes(o))]).toEqual(["proc", "rw", "nosuid", "nodev", "noexec"]);
      expect(at("/sys")[0]!.fstype).toBe("sysfs");
      expect(at("/sys")[0]!.options).toContain("ro");
      expect(at("/dev")[0]!.fstype).toBe("tmpfs");
      expect(at("/dev/shm")[0]!.fstype).toBe("tmpfs");
      expect(at("/dev/mqueue")[0]!.fstype).toBe("mqueue");
      const pts = at("/dev/pts")[0]!;
      expect(pts.fstype).toBe("devpts");
      expect(pts.superOptions).toContain("ptmxmode=666");
      // its own devpts instance, not the host's
      const hostPts = parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8")).filter((m) => m.fstype === "devpts").map((m) => m.dev);
      expect(hostPts).not.toContain(pts.dev);
      for (const path of [...MASKED, ...EXTRA_MASKED, ...READONLY]) {
        // the container's /proc and /sys hold what the host's do
        expect(`${path}: ${at(path).length}`).toBe(`${path}: ${existsSync(path) ? 1 : 0}`);
      }
      for (const path of READONLY.filter((p) => existsSync(p))) expect(at(path)[0]!.options).toContain("ro");
    });

    test(`/dev holds the default devices and links (${name})`, async () => {
      const r = await dokrust(["-r", rootfs, ...sh("cd /dev; for f in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' $f; done; for l in fd stdin stdout stderr ptmx; do echo $l $(readlink $l); done; ls /dev/pts; test -e /dev/console; echo console=$?")]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(
        [
          "null character special file 1:3 666",
          "zero character special file 1:5 666",
          "full character special file 1:7 666",
          "random character special file 1:8 666",
          "urandom character special file 1:9 666",
          "tty character special file 5:0 666",
          "fd /proc/self/fd",
          "stdin /proc/self/fd/0",
          "stdout /proc/self/fd/1",
          "stderr /proc/self/fd/2",
          "ptmx pts/ptmx",
          "ptmx",
          "console=1", // no terminal, no console
          "",
        ].join("\n"),
      );
    });

    test(`the devices work, and only they (${name})`, async () => {
      const r = await dokrust(["-r", rootfs, ...sh("echo x > /dev/null; echo null=$?; head -c 5 /dev/zero | wc -c; head -c 5 /dev/urandom | wc -c; echo x 2>/dev/null > /dev/full; echo full=$?; mknod /dev/sda b 8 0 && head -c 1 /dev/sda; echo sda=$?")]);
      expect(r.code).toBe(0);
      expect(r.stdout.replace(/ +/g, "")).toBe("null=0\n5\n5\nfull=1\nsda=1\n");
      expect(r.stderr).toContain("Operation not permitted");
    });

    test(`masked paths read as nothing and read-only paths refuse writes (${name})`, async () => {
      const files = ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/interrupts", "/proc/sched_debug", "/proc/latency_stats", "/proc/timer_stats"];
      const dirs = ["/proc/acpi", "/proc/asound", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"];
      const script = [
        ...files.map((f) => `[ -e ${f} ] && echo "${f} $(head -c 100 ${f} | wc -c)"`),
        ...dirs.map((d) => `[ -e ${d} ] && echo "${d} $(ls -A ${d} | wc -l)"`),
        "if echo x > /proc/sys/kernel/domainname; then echo sys=written; else echo sys=refused; fi",
        "if [ -e /proc/sysrq-trigger ]; then if echo h > /proc/sysrq-trigger; then echo sysrq=written; else echo sysrq=refused; fi; fi",
        "true",
      ].join("\n");
      const r = await dokrust(["-r", rootfs, ...sh(script)]);
      expect(r.code).toBe(0);
      const lines = r.stdout.trim().split("\n").map((l) => l.replace(/ +/g, " "));
      const expected = [
        ...files.filter((f) => existsSync(f)).map((f) => `${f} 0`),
        ...dirs.filter((d) => existsSync(d)).map((d) => `${d} 0`),
        "sys=refused",
        ...(existsSync("/proc/sysrq-trigger") ? ["sysrq=refused"] : []),
      ];
      expect(lines).toEqual(expected);
      expect(r.stderr).toContain("Read-only file system");
    });

    test(`capabilities are docker's default set (${name})`, async () => {
      const r = await dokrust(["-r", rootfs, ...sh("cat /proc/self/status")]);
      expect(r.code).toBe(0);
      const caps = capabilities(r.stdout);
      expect(caps).toEqual({ CapInh: 0n, CapPrm: DOCKER_CAPS, CapEff: DOCKER_CAPS, CapBnd: DOCKER_CAPS, CapAmb: 0n });
    });

    test(`/etc/hostname, /etc/hosts and /etc/resolv.conf are provided; the rootfs files stay as they are (${name})`, async () => {
      const files = ["hostname", "hosts", "resolv.conf"].map((f) => `${rootfs}/etc/${f}`);
      const stamp = () => files.map((f) => `${f} ${statSync(f).mtimeMs} ${readFileSync(f, "utf8")}`);
      const before = stamp();
      const r = await dokrust(["-r", rootfs, "-n", "box", ...sh("cat /etc/hostname; echo --; cat /etc/hosts; echo --; cat /etc/resolv.conf; echo; echo --; echo changed > /etc/hostname; cat /etc/hostname")]);
      expect(r.code).toBe(0);
      const [hostname, hosts, resolv, after] = r.stdout.split(/^--\n/m);
      expect(hostname).toBe("box\n");
      expect(hosts).toMatch(/^127\.0\.0\.1\s+localhost$/m);
      // without a network of its own (--net none), the name is a loopback address
      expect(hosts).toMatch(/^127\.0\.1\.1\s+box$/m);
      // the host's resolvers, less the loopback ones the container cannot reach
      const hostResolv = existsSync("/etc/resolv.conf") ? readFileSync("/etc/resolv.conf", "utf8") : "";
      for (const line of hostResolv.split("\n").filter((l) => /^\s*nameserver\s/.test(l))) {
        if (/nameserver\s+(127\.|::1)/.test(line)) expect(resolv).not.toContain(line);
        else expect(resolv).toContain(line);
      }
      expect(resolv).not.toMatch(/nameserver\s+127\./);
      // written through to dokrust's copy, not to the rootfs
      expect(after).toBe("changed\n");
      expect(stamp()).toEqual(before);
    });
  }

  test("--cap-add and --cap-drop change the set", async () => {
    const r = await dokrust(["-r", BUSYBOX, "--cap-add", "NET_ADMIN", "--cap-add", "cap_sys_ptrace", "--cap-drop", "CHOWN", ...sh("cat /proc/self/status")]);
    expect(r.code).toBe(0);
    const want = (DOCKER_CAPS | (1n << 12n) | (1n << 19n)) & ~1n;
    expect(capabilities(r.stdout)).toMatchObject({ CapEff: want, CapPrm: want, CapBnd: want });
  });

  test("--cap-drop ALL leaves no capabilities", async () => {
    const r = await dokrust(["-r", BUSYBOX, "--cap-drop", "ALL", ...sh("cat /proc/self/status; hostname x 2>&1; echo $?")]);
    expect(r.code).toBe(0);
    expect(capabilities(r.stdout)).toMatchObject({ CapEff: 0n, CapPrm: 0n, CapBnd: 0n });
    expect(r.stdout).toMatch(/\n1\n$/);
  });

  test("--cap-add ALL gives every capability dokrust holds itself", async () => {
    const own = capabilities(readFileSync("/proc/self/status", "utf8")).CapBnd!;
    const r = await dokrust(["-r", BUSYBOX, "--cap-add", "ALL", ...sh("cat /proc/self/status")]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(capabilities(r.stdout)).toMatchObject({ CapEff: own, CapPrm: own, CapBnd: own });
  });

  test("the default capabilities are enforced: no mount without CAP_SYS_ADMIN", async () => {
    const r = await dokrust(["-r", BUSYBOX, ...sh("mount -t tmpfs none /mnt 2>&1; echo mount=$?")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/mount=(1|255)\n$/);
  });

  test("a rootfs copy is unchanged on disk after a run but for the mount points dokrust creates", async () => {
    const rootfs = fixtureCopy();
    const list = () => Bun.spawnSync(["find", rootfs, "-printf", "%P %y %m\\n"]).stdout.toString().split("\n").sort();
    const before = list();
    const r = await dokrust(["-r", rootfs, ...sh("true")]);
    expect(r.code).toBe(0);
    expect(list()).toEqual(before);
  });
});
