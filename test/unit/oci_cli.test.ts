import { describe, expect, test } from "bun:test";
import { parseGlobals, splitGlobal } from "../../src/cli/oci.ts";
import { filterPs } from "../../src/cli/commands/ps.ts";
import { table } from "../../src/cli/commands/list.ts";
import { cgroupAncestors, cgroupPathOf } from "../../src/runtime/cgroup-path.ts";
import { formatRecord } from "../../src/runtime/log.ts";
import { parseSignal } from "../../src/runtime/signals.ts";
import { checkId } from "../../src/runtime/state.ts";

describe("parseSignal()", () => {
  test("takes names with and without SIG, any case", () => {
    expect(parseSignal("TERM")).toBe(15);
    expect(parseSignal("SIGKILL")).toBe(9);
    expect(parseSignal("sigusr1")).toBe(10);
    expect(parseSignal("hup")).toBe(1);
  });
  test("takes numbers and real-time signals", () => {
    expect(parseSignal("9")).toBe(9);
    expect(parseSignal("SIGRTMIN")).toBe(34);
    expect(parseSignal("RTMIN+2")).toBe(36);
    expect(parseSignal("SIGRTMAX")).toBe(64);
  });
  test("refuses unknown signals", () => {
    expect(() => parseSignal("FOO")).toThrow('unknown signal "FOO"');
    expect(() => parseSignal("0")).toThrow("unknown signal");
    expect(() => parseSignal("65")).toThrow("unknown signal");
  });
});

describe("container ids", () => {
  test("checkId() accepts runc's characters", () => {
    expect(checkId("a-b_c+d.e1")).toBe("a-b_c+d.e1");
  });
  test("checkId() refuses slashes, dot-dot and empty ids", () => {
    expect(() => checkId("a/b")).toThrow("invalid container id");
    expect(() => checkId("..")).toThrow("invalid container id");
    expect(() => checkId("a..b")).toThrow("invalid container id");
    expect(() => checkId("")).toThrow("cannot be empty");
  });
});

describe("global options", () => {
  test("splitGlobal() stops at the command word, skipping option values", () => {
    expect(splitGlobal(["--root", "/x", "--debug", "state", "--root", "id"])).toEqual({
      global: ["--root", "/x", "--debug"],
      command: "state",
      rest: ["--root", "id"],
    });
  });
  test("parseGlobals() defaults the root and checks the log format", () => {
    expect(parseGlobals([]).root).toBe("/run/dokrust");
    expect(parseGlobals(["--log-format", "json", "--log", "/l"])).toMatchObject({ logFormat: "json", log: "/l" });
    expect(() => parseGlobals(["--log-format", "xml"])).toThrow("--log-format");
  });
  test("parseGlobals() refuses the systemd driver and rootless true", () => {
    expect(() => parseGlobals(["--systemd-cgroup"])).toThrow("systemd cgroup driver is not supported");
    expect(() => parseGlobals(["--rootless", "true"])).toThrow("not supported");
    expect(parseGlobals(["--rootless", "false"]).root).toBe("/run/dokrust");
  });
});

describe("log records", () => {
  test("formatRecord() writes json lines with level, msg and time", () => {
    const line = formatRecord("json", "error", 'bad "x"', new Date("2024-01-02T03:04:05.678Z"));
    expect(line).toBe('{"level":"error","msg":"bad \\"x\\"","time":"2024-01-02T03:04:05Z"}\n');
  });
  test("formatRecord() writes logrus text records", () => {
    expect(formatRecord("text", "warn", "w", new Date("2024-01-02T03:04:05Z"))).toBe('time="2024-01-02T03:04:05Z" level=warning msg="w"\n');
  });
});

describe("cgroup paths", () => {
  test("cgroupPathOf() defaults to /dokrust/<id>", () => {
    expect(cgroupPathOf(undefined, "c1")).toBe("/dokrust/c1");
  });
  test("cgroupPathOf() keeps the path form", () => {
    expect(cgroupPathOf("/a/b", "c1")).toBe("/a/b");
    expect(cgroupPathOf("rel/b", "c1")).toBe("/rel/b");
  });
  test("cgroupPathOf() lays out the systemd form as systemd would", () => {
    expect(cgroupPathOf("system.slice:docker:abc", "c1")).toBe("/system.slice/docker-abc.scope");
    expect(cgroupPathOf("a-b.slice:crio:x", "c1")).toBe("/a.slice/a-b.slice/crio-x.scope");
    expect(() => cgroupPathOf("bad:p:n", "c1")).toThrow("invalid slice");
  });
  test("cgroupAncestors() lists the parents outermost first", () => {
    expect(cgroupAncestors("/a/b/c")).toEqual(["/a", "/a/b"]);
  });
});

describe("list and ps output", () => {
  test("table() pads columns like runc's tabwriter", () => {
    expect(table([["ID", "PID"], ["abc", "12"]])).toBe("ID          PID\nabc         12\n");
  });
  test("filterPs() keeps the header and the container's pids", () => {
    const out = "UID PID PPID CMD\nroot 1 0 init\nroot 42 1 sleep\n";
    expect(filterPs(out, new Set([42]))).toBe("UID PID PPID CMD\nroot 42 1 sleep\n");
  });
});
