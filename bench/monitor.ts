/**
 * The monitor's memory: VmRSS of dokrust-monitor (native/monitor.c)
 * watching detached busybox containers, next to conmon's watching the
 * same container through dokrust's OCI face, when conmon is installed.
 * A benchmark, not a test: run as root with `bun bench/monitor.ts [N]`.
 *
 * Each container writes a line every 100 ms, so the monitors are busy
 * logging while measured.  Everything started here is removed at the end.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";

const REPO = resolve(import.meta.dir, "..");
const BIN = `${REPO}/bin/dokrust`;
const BUSYBOX = `${REPO}/test/fixtures/cache/busybox`;
const N = Number(process.argv[2] ?? 5);
const tag = `dokrust-test-bench-${process.pid}`;
const root = `/run/${tag}`;
const env = { ...process.env, DOKRUST_ROOT: root };
const SCRIPT = "while true; do echo tick; sleep 0.1; done";

function status(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of readFileSync(`/proc/${pid}/status`, "utf8").matchAll(/^(VmRSS|RssAnon|RssFile|VmSize):\s+(\d+) kB$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

function readText(path: string): string {
  return existsSync(path) ? readFileSync(path, "utf8") : "";
}

function run(argv: string[]): string {
  const r = Bun.spawnSync(argv, { env, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

function summary(name: string, rows: Array<Record<string, number>>): void {
  const avg = (k: string) => (rows.reduce((s, r) => s + (r[k] ?? 0), 0) / rows.length).toFixed(0);
  const max = (k: string) => Math.max(...rows.map((r) => r[k] ?? 0));
  console.log(`${name.padEnd(16)} n=${rows.length}  VmRSS avg ${avg("VmRSS")} kB (max ${max("VmRSS")})  RssAnon avg ${avg("RssAnon")} kB  RssFile avg ${avg("RssFile")} kB`);
}

async function dokrustMonitors(): Promise<void> {
  const ids: string[] = [];
  try {
    for (let i = 0; i < N; i++) ids.push(run([BIN, "-r", BUSYBOX, "--net", "none", "-d", "--", "sh", "-c", SCRIPT]).trim());
    await Bun.sleep(1500);
    const rows = ids.map((id) => {
      const state = JSON.parse(readFileSync(`${root}/${id}/state.json`, "utf8")) as { dokrust: { monitorPid: number } };
      return status(state.dokrust.monitorPid);
    });
    summary("dokrust-monitor", rows);
  } finally {
    if (ids.length) run([BIN, "rm", "-f", ...ids]);
  }
}

/** conmon running the same container through dokrust's OCI face (create/start). */
async function conmonMonitors(): Promise<void> {
  const conmon = Bun.which("conmon");
  if (!conmon) {
    console.log("conmon          not installed (apt-get install conmon), skipped");
    return;
  }
  const work = `/tmp/${tag}`;
  const pids: number[] = [];
  const ids: string[] = [];
  try {
    for (let i = 0; i < N; i++) {
      const id = `${tag}-c${i}`;
      const bundle = `${work}/${id}`;
      mkdirSync(bundle, { recursive: true });
      run(["cp", "-a", BUSYBOX, `${bundle}/rootfs`]);
      run([BIN, "spec", "--bundle", bundle]);
      const config = JSON.parse(readFileSync(`${bundle}/config.json`, "utf8"));
      config.process.terminal = false;
      config.process.args = ["sh", "-c", SCRIPT];
      writeFileSync(`${bundle}/config.json`, JSON.stringify(config));
      const args = [
        conmon, "--cid", id, "--cuuid", id, "--name", id, "--runtime", BIN, "--runtime-arg", "--root", "--runtime-arg", root,
        "--bundle", bundle, "--log-path", `${bundle}/ctr.log`, "--exit-dir", work, "--container-pidfile", `${bundle}/pid`,
        "--conmon-pidfile", `${bundle}/conmon.pid`, "--socket-dir-path", work, "--syslog=false",
      ];
      // through sh, with plain /dev/null stdio: started straight from Bun, conmon never ran create here
      run(["sh", "-c", `${args.map((a) => `'${a}'`).join(" ")} </dev/null >/dev/null 2>&1`]);
      // conmon writes its own pid first, the container's once create is done
      for (let t = 0; t < 250 && !existsSync(`${bundle}/pid`); t++) await Bun.sleep(20);
      if (!existsSync(`${bundle}/pid`)) throw new Error(`conmon for ${id} did not create the container: ${readText(`${bundle}/ctr.log`)}`);
      ids.push(id);
      pids.push(Number(readFileSync(`${bundle}/conmon.pid`, "utf8")));
      run([BIN, "--root", root, "start", id]);
    }
    await Bun.sleep(1500);
    summary("conmon", pids.map(status));
  } finally {
    for (const id of ids) Bun.spawnSync([BIN, "--root", root, "delete", "--force", id], { env });
    for (const pid of pids) for (let t = 0; t < 100 && existsSync(`/proc/${pid}/status`) && !/State:\s+Z/.test(readFileSync(`/proc/${pid}/status`, "utf8")); t++) await Bun.sleep(20);
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.getuid?.() !== 0) throw new Error("bench/monitor.ts runs containers: run it as root");
try {
  await dokrustMonitors();
  await conmonMonitors().catch((err: Error) => console.log(`conmon          not measured: ${err.message.split("\n")[0]}`));
} finally {
  rmSync(root, { recursive: true, force: true });
}
