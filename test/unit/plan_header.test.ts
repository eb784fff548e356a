import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { Op, Opt, CloneMode, REPORT_SIZE } from "../../src/plan/ops.ts";

const header = readFileSync(new URL("../../native/plan.h", import.meta.url), "utf8");
const defines = new Map<string, number>();
for (const m of header.matchAll(/^#define (DK_\w+) (0x[0-9a-f]+|\d+)u?\b/gm)) defines.set(m[1]!, Number(m[2]));

test("every op code in native/plan.h matches src/plan/ops.ts", () => {
  const ops = [...defines].filter(([k]) => k.startsWith("DK_OP_"));
  expect(ops.length).toBe(Object.keys(Op).length);
  for (const [name, value] of ops) expect(Op[name.slice(6) as keyof typeof Op]).toBe(value as never);
});

test("option bits and clone modes match", () => {
  for (const [name, value] of Object.entries(Opt)) expect(defines.get(`DK_${name}`)).toBe(value);
  expect(defines.get("DK_CLONE_WAIT")).toBe(CloneMode.WAIT);
  expect(defines.get("DK_CLONE_DETACH")).toBe(CloneMode.DETACH);
});

test("the report record is 32 bytes on both sides", () => {
  expect(header).toContain("char syscall[16];");
  expect(REPORT_SIZE).toBe(4 + 4 + 4 + 4 + 16);
});
