/**
 * Images for real: import of each format made by standard tools (umoci,
 * skopeo, GNU tar), containers on an overlay of the image's layers,
 * removal and pruning, pulling from a docker-registry on loopback (with
 * and without bearer tokens), and bad input (one line, exit 125, the
 * store left as it was).  Each test file run has its own data root,
 * /var/lib/dokrust-test-<run>, removed at the end.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { makeTar } from "../unit/image_helpers.ts";
import { BIN, dokrust, findContainer, ready, RUN_ID, sh, start, startDokrust, stateRoot, TMP_PREFIX, useLeakCheck, type Result } from "./helpers.ts";
import {
  buildFixtures,
  haveImageTools,
  haveRegistry,
  makeMultiPlatform,
  run,
  startRegistry,
  startTokenProxy,
  writeLayout,
  type Fixtures,
} from "./image_fixtures.ts";

useLeakCheck();

const DATA = `/var/lib/dokrust-test-${RUN_ID}-${randomBytes(3).toString("hex")}`;
const WORK = `${TMP_PREFIX}-images`;
const enabled = ready && haveImageTools;
let fx: Fixtures;

/**
 * dokrust with this file's data root: containers through the helpers'
 * dokrust() (which adds --net none), the image commands as they are.
 */
function dk(args: string[], env: Record<string, string> = {}): Promise<Result> {
  const options = { env: { DOKRUST_DATA_ROOT: DATA, DOKRUST_ROOT: stateRoot(), ...env }, timeoutMs: 60_000 };
  if (args[0] === "image" || args[0] === "pull") return start([BIN, ...args], options).result;
  return dokrust(args, options);
}

async function ok(args: string[]): Promise<string> {
  const r = await dk(args);
  if (r.code !== 0) throw new Error(`dokrust ${args.join(" ")}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

interface Inspected {
  id: string;
  name: string;
  layers: string[];
  config: { Entrypoint: string[] | null; Cmd: string[] | null; Env: string[]; WorkingDir: string; User: string; ExposedPorts: Record<string, object> };
}

async function inspect(name: string): Promise<Inspected> {
  return (JSON.parse(await ok(["image", "inspect", name])) as Inspected[])[0]!;
}

/** Every path in the store with its size and mtime (to see that nothing changed). */
function storeSnapshot(): string {
  if (!existsSync(DATA)) return "";
  // Directories by name only: taking the lock cleans tmp/, which dates it.
  return run(["sh", "-c", `cd ${DATA} && find . -path ./lock -prune -o -type d -printf '%p/\\n' -o -printf '%p %y %s %T@\\n' | sort`]);
}

/** What a layer directory holds, with sizes and times: must never change. */
function layerSnapshot(): string {
  return run(["sh", "-c", `cd ${DATA}/layers && find . -printf '%p %y %m %s %T@\\n' | sort`]);
}

beforeAll(() => {
  if (!enabled) return;
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true });
  fx = buildFixtures(WORK);
});

afterAll(() => {
  rmSync(WORK, { recursive: true, force: true });
  rmSync(DATA, { recursive: true, force: true });
});

describe.skipIf(!enabled)("image import", () => {
  test("an OCI layout made by umoci: its layers, config and exposed ports", async () => {
    const out = await ok(["image", "import", fx.layout, "--name", "demo"]);
    expect(out).toMatch(/^demo sha256:[a-f0-9]{64}\n$/);
    const image = await inspect("demo");
    expect(image.layers).toHaveLength(2);
    expect(image.config.Entrypoint).toEqual(["/bin/sh"]);
    expect(image.config.Cmd).toEqual(["-c", "echo from-cmd; id; pwd; echo FOO=$FOO"]);
    expect(image.config.Env).toContain("FOO=bar");
    expect(image.config.WorkingDir).toBe("/data");
    expect(image.config.User).toBe("65534");
    expect(Object.keys(image.config.ExposedPorts)).toEqual(["8080/tcp"]);
    for (const diffId of image.layers) expect(statSync(`${DATA}/layers/${diffId.slice(7)}`).isDirectory()).toBe(true);
    const listed = JSON.parse(await ok(["image", "ls", "--format", "json"])) as Array<{ name: string }>;
    expect(listed.map((r) => r.name)).toContain("demo");
    expect(await ok(["image", "ls"])).toMatch(/^NAME\s+ID\s+LAYERS\s+ADDED\n(.*\n)*demo\s+[a-f0-9]{12}\s+2\s/);
    expect(readdirSync(`${DATA}/tmp`)).toEqual([]);
  });

  test("an oci-archive and a docker-archive made by skopeo are the same image, sharing its layers", async () => {
    const demo = await inspect("demo");
    const layersBefore = readdirSync(`${DATA}/layers`).length;
    await ok(["image", "import", fx.ociArchive, "--name", "demo-oci-archive"]);
    await ok(["image", "import", fx.dockerArchive, "--name", "demo-docker-archive"]);
    const fromOci = await inspect("demo-oci-archive");
    const fromDocker = await inspect("demo-docker-archive");
    expect(fromOci.id).toBe(demo.id);
    expect(fromDocker.id).toBe(demo.id);
    expect(fromDocker.layers).toEqual(demo.layers);
    expect(readdirSync(`${DATA}/layers`)).toHaveLength(layersBefore);
  });

  test("root file system tarballs, plain, gzip, zstd and xz, are one and the same layer", async () => {
    const layers = new Set<string>();
    for (const [kind, path] of Object.entries(fx.tarballs)) {
      await ok(["image", "import", path, "--name", `tarball-${kind}`]);
      const image = await inspect(`tarball-${kind}`);
      expect(image.layers).toHaveLength(1);
      expect(image.config.Cmd).toEqual(["/bin/sh"]);
      layers.add(image.layers[0]!);
    }
    expect(layers.size).toBe(1);
    const layer = `${DATA}/layers/${[...layers][0]!.slice(7)}`;
    expect(readFileSync(`${layer}/etc/passwd`, "utf8")).toStartWith("root:");
  });

  test("a directory becomes an image of one layer", async () => {
    await ok(["image", "import", fx.unpacked, "--name", "from-dir"]);
    const image = await inspect("from-dir");
    expect(image.layers).toHaveLength(1);
    const r = await dk(["-r", "from-dir", ...sh("cat /data/b /etc/h2")]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("new\nhard\n");
  });
});

describe.skipIf(!enabled)("a container from an image", () => {
  test("the image's entrypoint, cmd, env, working directory and user", async () => {
    const r = await dk(["-r", "demo"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("from-cmd\nuid=65534(nobody) gid=65534(nogroup)\n/data\nFOO=bar\n");
    expect(r.code).toBe(0);
  });

  test("the command line wins over the image's defaults", async () => {
    const r = await dk(["-r", "demo", "-e", "FOO=cli", "-w", "/", "-u", "0", "-c", "echo $FOO; pwd; id -u"]);
    expect(r.stdout).toBe("cli\n/\n0\n");
    // a command after -- follows the entrypoint (/bin/sh), as with docker run
    expect((await dk(["-r", "demo", "--", "-c", "echo args"])).stdout).toBe("args\n");
  });

  test("the root shows what umoci unpacks: whiteouts applied, hard links kept", async () => {
    const r = await dk(["-r", "demo", "-u", "0", "-c", "cd / && find . -xdev | sort; stat -c '%i %h' /etc/h1 /etc/h2"]);
    expect(r.stderr).toBe("");
    const lines = r.stdout.trimEnd().split("\n");
    const [h1, h2] = lines.slice(-2);
    expect(h1).toBe(h2);
    expect(h1).toMatch(/ 2$/);
    const expected = run(["sh", "-c", `cd ${fx.unpacked} && find . | sort`]).trimEnd().split("\n");
    expect(lines.slice(0, -2)).toEqual(expected);
    expect(expected).not.toContain("./gone");
    expect(expected).not.toContain("./etc/deleted");
    expect(expected).toContain("./data/b");
  });

  test("writes go to the container's own upper directory, never into the image", async () => {
    const before = layerSnapshot();
    const script = "echo x > /data/new; rm /data/b; rm -r /bin; echo y >> /etc/passwd; ls /data; ls / | grep -c bin";
    const r = await dk(["-r", "demo", "-u", "0", "-c", script]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("new\n1\n");
    expect(layerSnapshot()).toBe(before);
    const again = await dk(["-r", "demo", "-u", "0", "-c", "cat /data/b; ls /data/new 2>&1 | head -c 0; tail -c 2 /etc/passwd | od -c | head -1"]);
    expect(again.stdout).toStartWith("new\n");
  });

  test("-r with a name that is neither a directory nor an image", async () => {
    const r = await dk(["-r", "no-such-image", "--", "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toBe("dokrust: -r no-such-image: no such directory, and no image of that name (see dokrust image ls)\n");
  });
});

describe.skipIf(!enabled)("image rm and prune", () => {
  test("rm refuses an image a running container uses, and removes it after", async () => {
    await ok(["image", "import", fx.layout, "--name", "busy"]);
    const running = startDokrust(["-r", "busy", "-c", "echo up; sleep 30"], { env: { DOKRUST_DATA_ROOT: DATA }, timeoutMs: 40_000 });
    await running.waitFor("up");
    const container = await findContainer(running);
    const refused = await dk(["image", "rm", "busy"]);
    expect(refused.code).toBe(125);
    expect(refused.stderr).toMatch(/^dokrust: image rm busy: in use by 1 running container .*\n$/);
    // sh as pid 1 ignores SIGTERM: end the container itself.
    process.kill(container.pid, "SIGKILL");
    await running.result;
    expect(await ok(["image", "rm", "busy"])).toBe("busy\n");
    expect((await dk(["image", "inspect", "busy"])).code).toBe(125);
    // the layers stay: "demo" still uses them
    await ok(["image", "inspect", "demo"]);
  });

  test("rm of the last image using a layer removes the layer; prune removes strays", async () => {
    const layer = (await inspect("from-dir")).layers[0]!;
    await ok(["image", "rm", "from-dir"]);
    expect(existsSync(`${DATA}/layers/${layer.slice(7)}`)).toBe(false);
    mkdirSync(`${DATA}/layers/${"0".repeat(64)}`);
    writeFileSync(`${DATA}/blobs/sha256/${"1".repeat(64)}`, "stray");
    expect(await ok(["image", "prune"])).toBe("removed 1 blobs and 1 layers\n");
    expect(await ok(["image", "prune"])).toBe("removed 0 blobs and 0 layers\n");
  });

  test("a staging directory left by a killed import is removed by the next import", async () => {
    mkdirSync(`${DATA}/tmp/deadbeef/layer-0`, { recursive: true });
    await ok(["image", "import", fx.tarballs.gzip, "--name", "tarball-gzip"]);
    expect(readdirSync(`${DATA}/tmp`)).toEqual([]);
  });
});

describe.skipIf(!enabled)("bad input: one line, exit 125, the store as it was", () => {
  async function rejected(args: string[], problem: RegExp): Promise<void> {
    const before = storeSnapshot();
    const r = await dk(args);
    expect(r.stdout).toBe("");
    const line = r.stderr.trimEnd();
    expect(line.split("\n")).toHaveLength(1);
    expect(line).toMatch(/^dokrust: [^A-Z]/);
    expect(line).toMatch(problem);
    expect(r.code).toBe(125);
    expect(storeSnapshot()).toBe(before);
  }

  function badFile(name: string, bytes: Uint8Array): string {
    const path = `${WORK}/${name}`;
    writeFileSync(path, bytes);
    return path;
  }

  test("a missing image name", async () => {
    await rejected(["image", "import", fx.layout], /an image name is required/);
    await rejected(["image", "import", fx.layout, "--name", "../up"], /image name "\.\.\/up"/);
  });

  test("a path that does not exist", async () => {
    await rejected(["image", "import", `${WORK}/nothing`, "--name", "x"], /no such file or directory/);
  });

  test("a truncated gzip tarball", async () => {
    const whole = readFileSync(fx.tarballs.gzip);
    await rejected(["image", "import", badFile("truncated.tar.gz", whole.subarray(0, whole.length >> 1)), "--name", "bad"], /truncated|unexpected end/);
  });

  test("a corrupt gzip tarball", async () => {
    const bytes = Buffer.from(readFileSync(fx.tarballs.gzip));
    for (let i = 2000; i < 2400; i++) bytes[i] = bytes[i]! ^ 0x5a;
    await rejected(["image", "import", badFile("corrupt.tar.gz", bytes), "--name", "bad"], /corrupt|truncated|invalid/);
  });

  test("a truncated OCI archive", async () => {
    const path = `${WORK}/truncated-oci.tar`;
    writeFileSync(path, readFileSync(fx.ociArchive));
    truncateSync(path, statSync(path).size - 700_000);
    await rejected(["image", "import", path, "--name", "bad"], /truncated|unexpected end|missing/);
  });

  test("a layer whose bytes do not match its digest", async () => {
    const layer = await makeTar([{ name: "f", content: "good" }]);
    const dir = `${WORK}/mismatch`;
    const { layerDigest } = writeLayout(dir, layer);
    writeFileSync(`${dir}/blobs/sha256/${layerDigest.slice(7)}`, Buffer.from(layer.toString("latin1").replace("good", "evil"), "latin1"));
    await rejected(["image", "import", dir, "--name", "bad"], new RegExp(`layer 1 of 1 \\(${layerDigest}\\): digest mismatch`));
  });

  test("a layer that does not match the config's diff_id", async () => {
    const dir = `${WORK}/diffid`;
    writeLayout(dir, await makeTar([{ name: "f", content: "x" }]), { diffIds: [`sha256:${"e".repeat(64)}`] });
    await rejected(["image", "import", dir, "--name", "bad"], /diff_id \(uncompressed\): digest mismatch/);
  });

  test("a layer with a path escaping its directory", async () => {
    const dir = `${WORK}/escape`;
    writeLayout(dir, await makeTar([{ name: "../../../../tmp/dokrust-test-escaped", content: "x" }]));
    await rejected(["image", "import", dir, "--name", "bad"], /path escapes the layer/);
    expect(existsSync("/tmp/dokrust-test-escaped")).toBe(false);
    const tarball = badFile("escape.tar", await makeTar([{ name: "ok", content: "x" }, { name: "link", type: "symlink", linkname: "/tmp" }, { name: "link/dokrust-test-escaped", content: "x" }]));
    await rejected(["image", "import", tarball, "--name", "bad"], /its parent link is a symlink/);
    expect(existsSync("/tmp/dokrust-test-escaped")).toBe(false);
  });

  test("an unknown layer media type", async () => {
    const dir = `${WORK}/mediatype`;
    writeLayout(dir, await makeTar([{ name: "f", content: "x" }]), { layerMediaType: "application/vnd.example.mystery" });
    await rejected(["image", "import", dir, "--name", "bad"], /unknown layer media type application\/vnd\.example\.mystery/);
  });

  test("garbage that is no archive at all", async () => {
    await rejected(["image", "import", badFile("garbage.tar", randomBytes(4096)), "--name", "bad"], /corrupt|not a tar/);
  });
});

describe.skipIf(!enabled || !haveRegistry)("pull from a registry on loopback", () => {
  let registry: Awaited<ReturnType<typeof startRegistry>> | undefined;

  beforeAll(async () => {
    if (!enabled || !haveRegistry) return;
    registry = await startRegistry(`${WORK}/registry`);
    run(["skopeo", "copy", "-q", "--dest-tls-verify=false", `oci:${fx.layout}:demo`, `docker://${registry.address}/demo:1`]);
  });

  afterAll(() => registry?.stop());

  test("pull fetches the image, checks it, and a container runs from it", async () => {
    const ref = `${registry!.address}/demo:1`;
    const out = await ok(["pull", ref]);
    const demo = await inspect("demo");
    expect(out).toBe(`${ref} ${demo.id}\n`);
    expect((await inspect(ref)).layers).toEqual(demo.layers);
    expect((await dk(["-r", ref])).stdout).toStartWith("from-cmd\n");
  });

  test("pull asks for a bearer token when the registry answers 401", async () => {
    const proxy = startTokenProxy(registry!.address);
    try {
      await ok(["image", "rm", `${registry!.address}/demo:1`]);
      await ok(["image", "prune"]);
      const ref = `${proxy.address}/demo:1`;
      await ok(["pull", ref]);
      expect(proxy.tokensIssued()).toBe(1);
      expect((await inspect(ref)).layers).toHaveLength(2);
    } finally {
      proxy.stop();
    }
  });

  test("pull picks linux/amd64 from a manifest list", async () => {
    const layout = `${WORK}/multi`;
    run(["cp", "-a", fx.layout, layout]);
    makeMultiPlatform(layout);
    run(["skopeo", "copy", "-q", "--all", "--dest-tls-verify=false", `oci:${layout}:multi`, `docker://${registry!.address}/demo:multi`]);
    await ok(["pull", `${registry!.address}/demo:multi`]);
    const pulled = (await inspect(`${registry!.address}/demo:multi`)) as Inspected & { manifest: string };
    const demo = (await inspect("demo")) as Inspected & { manifest: string };
    expect(pulled.manifest).toBe(demo.manifest);
  });

  test("a tag the registry does not have", async () => {
    const r = await dk(["pull", `${registry!.address}/demo:nope`]);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/^dokrust: pull .*demo:nope: manifest nope: 404 not found \(MANIFEST_UNKNOWN/);
    expect(readdirSync(`${DATA}/tmp`)).toEqual([]);
  });
});
