import { expect, test } from "bun:test";
import { checkHostname, parseRunArgs, parseSize } from "../../src/cli/dokrust.ts";
import { UsageError } from "../../src/errors.ts";
import { specFromOptions } from "../../src/spec/from-options.ts";

test("parseRunArgs() keeps the original options and their defaults", () => {
  const o = parseRunArgs(["-r", "/", "-n", "box", "-q", "pids:pids.max:50", "-m", "/tmp:/data:ro", "--", "/bin/sh", "-c", "x"])!;
  expect(o.rootfs).toBe("/");
  expect(o.hostname).toBe("box");
  expect(o.quota).toEqual([{ controller: "pids", file: "pids.max", value: "50" }]);
  expect(o.mounts).toEqual([{ source: "/tmp", destination: "/data", readonly: true }]);
  expect(o.args).toEqual(["/bin/sh", "-c", "x"]);
  expect(parseRunArgs([])!.hostname).toBe("dokka");
  expect(parseRunArgs(["-h"])).toBeUndefined();
});

test("parseRunArgs() runs -c through /bin/sh and appends the arguments after --", () => {
  expect(parseRunArgs(["-c", "echo $1", "--", "a", "b"])!.args).toEqual(["/bin/sh", "-c", "echo $1", "a", "b"]);
});

test("parseRunArgs() takes docker's options, combined short flags included", () => {
  const o = parseRunArgs(["-it", "-e", "A=1", "-w", "/w", "-u", "1000:100", "--cpus", "1.5", "--memory", "64m", "--pids-limit", "9", "--read-only", "--cap-add", "net_admin", "--cap-drop", "CAP_CHOWN"])!;
  expect([o.interactive, o.tty, o.readOnly]).toEqual([true, true, true]);
  expect(o.user).toEqual({ uid: 1000, gid: 100 });
  expect([o.cpus, o.memory, o.pidsLimit]).toEqual([1.5, 64 * 1024 * 1024, 9]);
  expect(o.capAdd).toEqual(["CAP_NET_ADMIN"]);
  const spec = specFromOptions(o, "/", undefined);
  expect(spec.process!.capabilities!.bounding).toContain("CAP_NET_ADMIN");
  expect(spec.process!.capabilities!.bounding).not.toContain("CAP_CHOWN");
  expect(spec.linux!.resources!.cpu).toEqual({ quota: 150000, period: 100000 });
  expect(spec.process!.env).toContain("A=1");
});

test("parseRunArgs() names the problem in bad input", () => {
  const bad: Array<[string[], RegExp]> = [
    [["-r", "/nonexistent-dokrust"], /rootfs \/nonexistent-dokrust does not exist/],
    [["-r", "/etc/hostname"], /is not a directory/],
    [["-q", "pids:pids.max"], /controller:file:value/],
    [["-m", "/nonexistent-dokrust:/x"], /does not exist/],
    [["-m", "/tmp:relative"], /absolute path/],
    [["-m", "/tmp"], /SRC:DST/],
    [["--bogus"], /bogus/],
    [["-u", "root"], /numeric/],
    [["--memory", "lots"], /size/],
    [["--cpus=0"], /positive/],
    [["--cpus", "-1"], /--cpus/],
    [["--cap-add", "FLY"], /unknown capability/],
    [["-e", "NOEQUALS"], /KEY=VALUE/],
  ];
  for (const [argv, message] of bad) expect(() => parseRunArgs(argv)).toThrow(message);
});

test("checkHostname() enforces length and characters", () => {
  expect(() => checkHostname("a".repeat(65))).toThrow(/longer than 64 bytes/);
  expect(() => checkHostname("bad_name")).toThrow(UsageError);
  expect(() => checkHostname("-x")).toThrow(UsageError);
  expect(checkHostname("a.b-c")).toBe("a.b-c");
});

test("parseSize() understands suffixes", () => {
  expect(parseSize("1g", "--memory")).toBe(1024 ** 3);
  expect(() => parseSize("1k", "--memory")).toThrow(/minimum/);
});
