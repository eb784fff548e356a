/**
 * Mutation fuzzing of config validation and plan compilation, in-process
 * (test/corpus/fuzz.ts): with a fixed seed, every mutated config.json
 * either compiles into a plan that encodes or is refused with a
 * DokrustError of one line; nothing else is ever thrown.  Long runs:
 * `bun scripts/fuzz.ts --iterations N --seed S`.
 */
import { expect, test } from "bun:test";
import { fuzz, runOne, seedSpec } from "../corpus/fuzz.ts";

test("the seed config compiles into a plan", async () => {
  expect(await runOne(JSON.parse(JSON.stringify(seedSpec())))).toEqual({ outcome: "plan" });
});

test("2000 seeded mutations of config.json: each a plan or a one-line DokrustError, never another exception", async () => {
  const result = await fuzz(2000, 7);
  expect(result.bugs).toEqual([]);
  // both outcomes occur: the mutations reach the compiler, not only the schema
  expect(result.plans).toBeGreaterThan(100);
  expect(result.refused).toBeGreaterThan(100);
});
