/**
 * Long fuzzing runs of the config validator and the plan compiler
 * (test/corpus/fuzz.ts):
 *
 *   node_modules/.bin/bun scripts/fuzz.ts [--iterations N] [--seed S]
 *
 * Prints the counts and every bug found (with the mutated config, to
 * replay); exits 1 when there was one.
 */
import { parseArgs } from "node:util";
import { fuzz } from "../test/corpus/fuzz.ts";

const { values } = parseArgs({ options: { iterations: { type: "string", default: "100000" }, seed: { type: "string", default: String(Date.now() % 2 ** 31) } } });
const iterations = Number(values.iterations);
const seed = Number(values.seed);
const started = performance.now();
const result = await fuzz(iterations, seed);
const seconds = ((performance.now() - started) / 1000).toFixed(1);
console.log(`fuzz: ${iterations} iterations, seed ${seed}, ${seconds} s: ${result.plans} plans, ${result.refused} refused, ${result.bugs.length} bugs`);
for (const b of result.bugs) console.log(`iteration ${b.iteration}: ${b.bug}\n  ${b.doc}`);
process.exit(result.bugs.length ? 1 : 0);
