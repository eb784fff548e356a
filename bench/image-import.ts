/**
 * Image import benchmark: the Debian minbase fixture as an OCI layout
 * (made once by umoci, not timed), imported by `dokrust image import`
 * into an empty store, against `skopeo copy` to a fresh layout plus
 * `umoci unpack` of it (what a user of those tools does to get the same
 * image into a store and onto disk).  Alternating runs, medians, ratio.
 * Not a timed test: it prints numbers, it asserts nothing.
 *
 *   bun bench/image-import.ts [--runs N]
 *
 * Needs root, umoci and skopeo, and the Debian fixture
 * (sh test/fixtures/build.sh).  Works under /tmp/dokrust-test-bench-* and
 * /var/lib/dokrust-test-bench-*, removed at the end.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { parseArgs } from "node:util";

const TOP = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const DEBIAN = `${TOP}/test/fixtures/cache/debian`;

function sh(command: string, env: Record<string, string> = {}): void {
  const r = Bun.spawnSync(["sh", "-c", command], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${command}: exit ${r.exitCode}: ${r.stderr.toString()}`);
}

function timed(command: string, env: Record<string, string> = {}): number {
  const start = performance.now();
  sh(command, env);
  return performance.now() - start;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function main(): void {
  const { values } = parseArgs({ options: { runs: { type: "string" } } });
  const runs = Number(values.runs ?? 5);
  if (process.getuid?.() !== 0) throw new Error("run as root (the image store sets owners and makes device nodes)");
  if (!existsSync(`${DEBIAN}/bin/bash`)) throw new Error("no Debian fixture: run sh test/fixtures/build.sh");
  for (const tool of ["umoci", "skopeo"]) if (!Bun.which(tool)) throw new Error(`${tool} is not installed`);
  const work = mkdtempSync("/tmp/dokrust-test-bench-");
  const data = mkdtempSync("/var/lib/dokrust-test-bench-");
  try {
    process.stdout.write("building the Debian OCI layout with umoci (not timed)...\n");
    sh(`umoci init --layout ${work}/src && umoci new --image ${work}/src:deb && umoci unpack --image ${work}/src:deb ${work}/b >/dev/null`);
    sh(`cp -a ${DEBIAN}/. ${work}/b/rootfs/ && umoci repack --image ${work}/src:deb ${work}/b && rm -rf ${work}/b`);
    const dokrust: number[] = [];
    const tools: number[] = [];
    for (let i = 0; i < runs; i++) {
      rmSync(data, { recursive: true, force: true });
      dokrust.push(timed(`${TOP}/bin/dokrust image import ${work}/src --name deb`, { DOKRUST_DATA_ROOT: data }));
      rmSync(`${work}/dst`, { recursive: true, force: true });
      rmSync(`${work}/bundle`, { recursive: true, force: true });
      tools.push(timed(`skopeo copy -q oci:${work}/src:deb oci:${work}/dst:deb && umoci unpack --image ${work}/dst:deb ${work}/bundle >/dev/null`));
    }
    const d = median(dokrust);
    const t = median(tools);
    process.stdout.write(`runs: ${runs} each, alternating\n`);
    process.stdout.write(`dokrust image import:          median ${d.toFixed(0)} ms  (${dokrust.map((v) => v.toFixed(0)).join(", ")})\n`);
    process.stdout.write(`skopeo copy + umoci unpack:    median ${t.toFixed(0)} ms  (${tools.map((v) => v.toFixed(0)).join(", ")})\n`);
    process.stdout.write(`ratio dokrust / (skopeo+umoci): ${(d / t).toFixed(2)}\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  }
}

main();
