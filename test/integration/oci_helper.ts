/**
 * The OCI face under test: a bundle writer (busybox rootfs + config.json
 * from defaultSpec() and a patch) and a runner for the runtime's command
 * line.  DOKRUST_TEST_RUNTIME=runc points the same tests at runc, so a
 * wrong test cannot hide.
 */
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
  readonly #cgroups: string[] = [];

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
    this.#cgroups.push(spec.linux!.cgroupsPath.slice(1));
    patch(spec, dir);
    writeFileSync(`${dir}/config.json`, JSON.stringify(spec, null, 2));
    return dir;
  }

  /**
   * Run the runtime with --root.  Output goes through files, not pipes: a
   * created container inherits the runtime's stdio (as with runc) and
   * would hold a pipe open long after the runtime exits.
   */
  async rt(args: string[], options: { cwd?: string; stdio?: number[] } = {}): Promise<Result> {
    const dir = mkdtempSync("/tmp/dokrust-test-out-");
    const out = openSync(`${dir}/stdout`, "w");
    const err = openSync(`${dir}/stderr`, "w");
    try {
      const proc = Bun.spawn([...RUNTIME, "--root", this.root, ...args], {
        cwd: options.cwd ?? "/",
        stdio: ["ignore", out, err, ...(options.stdio ?? [])],
      });
      const code = await proc.exited;
      return { code, stdout: readFileSync(`${dir}/stdout`, "utf8"), stderr: readFileSync(`${dir}/stderr`, "utf8") };
    } finally {
      closeSync(out);
      closeSync(err);
      rmSync(dir, { recursive: true, force: true });
    }
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
    const cgroups = leakedCgroups(this.#cgroups, [...this.#ids]);
    const mounts = (await Bun.file("/proc/self/mountinfo").text()).split("\n").filter((l) => l.includes("dokrust-test-bundle"));
    if (left.length || cgroups.length || mounts.length) {
      throw new Error(`leaked: state ${left.join(",")} cgroups ${cgroups.join(",")} mounts ${mounts.join(",")}`);
    }
  }
}

/** This session's cgroup directories (its cgroupsPath names, or dokrust/<id>) left behind. */
export function leakedCgroups(names: readonly string[], ids: readonly string[]): string[] {
  const found: string[] = [];
  for (const h of readdirSync("/sys/fs/cgroup")) {
    const base = `/sys/fs/cgroup/${h}`;
    for (const n of names) if (existsSync(`${base}/${n}`)) found.push(`${base}/${n}`);
    for (const id of ids) if (existsSync(`${base}/dokrust/${id}`)) found.push(`${base}/dokrust/${id}`);
  }
  return found;
}
