/**
 * Bad input never crashes dokrust (issue 7, promise 4).  The corpus
 * (test/corpus/configs.ts): malformed config.json files through OCI
 * `create`, and refused command lines of both faces.  Each ends with
 * exactly one line on stderr naming the problem (no "internal error", no
 * stack trace), a non-zero exit, and nothing left behind.  Cases run 4 at
 * a time.  The in-process fuzzing of the same path is
 * test/unit/fuzz.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { configCases, DOKRUST_ARGS, OCI_ARGS } from "../corpus/configs.ts";
import { BIN, pool, ready, StressSession, type Result } from "./stress_helper.ts";

const s = new StressSession();
let rootfs = "";

beforeAll(() => {
  if (!ready) return;
  s.setUp();
  rootfs = `${s.bundle(["true"])}/rootfs`;
});
afterAll(async () => {
  if (ready) await s.tearDown();
});

/** What is wrong with a refusal, or undefined when it is a proper one. */
function problem(r: Result, face: "oci" | "dokrust"): string | undefined {
  if (r.code === 0) return "it succeeded";
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  if (lines.length !== 1) return `${lines.length} lines on stderr: ${r.stderr.slice(0, 300)}`;
  if (/internal error|\n\s+at |TypeError|RangeError|SyntaxError|ReferenceError/.test(r.stderr)) return `not a clear error: ${lines[0]}`;
  if (face === "oci" && !/level=error msg=".+"/.test(lines[0]!)) return `not a log record: ${lines[0]}`;
  if (face === "dokrust" && !/^dokrust: \S/.test(lines[0]!)) return `not a dokrust error line: ${lines[0]}`;
  return undefined;
}

describe.skipIf(!ready)("bad input", () => {
  test("every malformed config.json of the corpus is refused by create with one clear line, and nothing is left", async () => {
    const cases = configCases(rootfs);
    expect(cases.length).toBeGreaterThanOrEqual(200);
    const failures: string[] = [];
    await pool(
      cases.map((c, i) => async () => {
        const bundle = `${s.tempDir("bad")}`;
        mkdirSync(bundle, { recursive: true });
        writeFileSync(`${bundle}/config.json`, c.bytes);
        const id = `dokrust-test-bad-${i}`;
        const r = await s.oci(["create", "--bundle", bundle, id]);
        const p = problem(r, "oci");
        if (p) failures.push(`${c.name}: ${p}`);
        if (r.code === 0) await s.oci(["delete", "--force", id]);
      }),
      4,
    );
    expect(failures).toEqual([]);
    expect(await s.leaks()).toEqual([]);
  }, 300_000);

  test("every refused command line of the dokrust face says why in one line, exit 125", async () => {
    const failures: string[] = [];
    await pool(
      DOKRUST_ARGS.map((args) => async () => {
        const argv = args.map((a) => (a === "ROOTFS" ? rootfs : a));
        const r = await s.dokrust(argv);
        const p = problem(r, "dokrust") ?? (r.code === 125 || r.code === 127 || r.code === 126 ? undefined : `exit ${r.code}`);
        if (p) failures.push(`dokrust ${argv.join(" ").slice(0, 120)}: ${p}`);
      }),
      4,
    );
    expect(failures).toEqual([]);
    expect(await s.leaks()).toEqual([]);
  }, 120_000);

  test("every refused command line of the OCI face says why in one log line, exit 1", async () => {
    const failures: string[] = [];
    await pool(
      OCI_ARGS.map((args) => async () => {
        const r = await s.oci(args);
        // exec fails with 255, as runc's does
        const p = problem(r, "oci") ?? (r.code === 1 || (args[0] === "exec" && r.code === 255) ? undefined : `exit ${r.code}`);
        if (p) failures.push(`${BIN} ${args.join(" ").slice(0, 120)}: ${p}`);
      }),
      4,
    );
    expect(failures).toEqual([]);
    expect(await s.leaks()).toEqual([]);
  }, 120_000);
});
