/**
 * The OCI face under test: a bundle writer (busybox rootfs + config.json
 * from defaultSpec() and a patch) and a runner for the runtime's command
 * line.  DOKRUST_TEST_RUNTIME=runc points the same tests at runc, so a
 * wrong test cannot hide.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { defaultSpec } from "../../src/spec/defaults.ts";
import type { Spec } from "../../src/spec/types.ts";

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
export const BUSYBOX = `${REPO}/test/fixtures/cache/busybox`;
export const IS_RUNC = process.env.DOKRUST_TEST_RUNTIME === "runc";
const RUNTIME = IS_RUNC ? ["/usr/sbin/runc"] : [`${REPO}/bin/dokrust`];

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export class OciSession {
  readonly root = `/run/dokrust-test-${randomBytes(4).toString("hex")}`;
  readonly #bundles: string[] = [];
  readonly #ids = new Set<string>();

  /** A fresh container id, remembered for cleanup. */
  id(): string {
    const id = `dokrust-test-${randomBytes(4).toString("hex")}`;
    this.#ids.add(id);
    return id;
  }

  /** A bundle: a copy of the busybox rootfs, an /out dir bound rw into it. */
  bundle(patch: (spec: Spec, bundle: string) => void = () => {}): string {
    const dir = mkdtempSync("/tmp/dokrust-test-bundle-");
    this.#bundles.push(dir);
    cpSync(BUSYBOX, `${dir}/rootfs`, { recursive: true, verbatimSymlinks: true });
    mkdirSync(`${dir}/out`);
    const spec = defaultSpec();
    spec.process!.terminal = false;
    spec.process!.args = ["sleep", "100"];
    spec.mounts!.push({ destination: "/out", type: "bind", source: `${dir}/out`, options: ["rbind", "rw"] });
    spec.linux!.cgroupsPath = `/dokrust-test-cg-${randomBytes(4).toString("hex")}`;
    patch(spec, dir);
    writeFileSync(`${dir}/config.json`, JSON.stringify(spec, null, 2));
    return dir;
  }

  /** Run the runtime with --root; stdio captured. */
  async rt(args: string[], options: { cwd?: string; stdio?: Array<number | "pipe" | "ignore"> } = {}): Promise<Result> {
    const extra = options.stdio ?? [];
    const proc = Bun.spawn([...RUNTIME, "--root", this.root, ...args], {
      cwd: options.cwd ?? "/",
      stdio: ["ignore", "pipe", "pipe", ...extra],
    });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { code, stdout, stderr };
  }

  /** Run and expect success. */
  async ok(args: string[], options: Parameters<OciSession["rt"]>[1] = {}): Promise<string> {
    const r = await this.rt(args, options);
    if (r.code !== 0) throw new Error(`${args.join(" ")}: exit ${r.code}: ${r.stderr}`);
    return r.stdout;
  }

  async state(id: string): Promise<Record<string, unknown>> {
    return JSON.parse(await this.ok(["state", id])) as Record<string, unknown>;
  }

  /** Poll until the container reaches a status. */
  async waitStatus(id: string, status: string, ms = 5000): Promise<void> {
    for (let t = 0; t < ms; t += 20) {
      if ((await this.state(id)).status === status) return;
      await Bun.sleep(20);
    }
    throw new Error(`${id} did not become ${status}`);
  }

  /** Delete everything, then assert nothing leaked. */
  async cleanup(): Promise<void> {
    for (const id of this.#ids) await this.rt(["delete", "--force", id]);
    const left = existsSync(this.root) ? readdirSync(this.root) : [];
    rmSync(this.root, { recursive: true, force: true });
    for (const dir of this.#bundles) rmSync(dir, { recursive: true, force: true });
    const cgroups = leakedCgroups();
    const mounts = (await Bun.file("/proc/self/mountinfo").text()).split("\n").filter((l) => l.includes("dokrust-test-bundle"));
    if (left.length || cgroups.length || mounts.length) {
      throw new Error(`leaked: state ${left.join(",")} cgroups ${cgroups.join(",")} mounts ${mounts.join(",")}`);
    }
  }
}

/** cgroup directories named dokrust-test-cg-* (or dokrust/dokrust-test-*) left behind. */
export function leakedCgroups(): string[] {
  const found: string[] = [];
  for (const h of readdirSync("/sys/fs/cgroup")) {
    const base = `/sys/fs/cgroup/${h}`;
    let names: string[];
    try {
      names = readdirSync(base);
    } catch {
      continue;
    }
    for (const n of names) if (n.startsWith("dokrust-test-cg-")) found.push(`${base}/${n}`);
    if (existsSync(`${base}/dokrust`)) {
      for (const n of readdirSync(`${base}/dokrust`)) if (n.startsWith("dokrust-test-")) found.push(`${base}/dokrust/${n}`);
    }
  }
  return found;
}
