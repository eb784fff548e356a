/**
 * Container networking end to end, as root, on a network of the test's
 * own: its own bridge (dokrust-test-XX), subnet, nft table and state
 * directory, given to dokrust through the environment.  Traffic goes only
 * to the host's loopback, to the test's containers, and to a server in a
 * network namespace this file creates (dokrust-test-<run>), wired to the
 * host by a veth of its own; `ip` is used here, by the test, to build and
 * inspect that.  After every test nothing of a container may be left
 * (links, addresses, routes, published ports, allocations); after the
 * file, `dokrust network prune` must remove the network itself.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { dlopen, FFIType } from "bun:ffi";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import {
  BIN,
  BUSYBOX,
  DEBIAN,
  RUN_ID,
  TMP_PREFIX,
  descendants,
  dokrust,
  dokrustCgroups,
  haveDebian,
  ready,
  sh,
  start,
  startDokrust,
  stateRoot,
  tempDir,
  useLeakCheck,
  type StartOptions,
} from "./helpers.ts";

useLeakCheck();

function run(argv: string[], allowFail = false): string {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0 && !allowFail) throw new Error(`${argv.join(" ")}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

const hex2 = () => Math.floor(Math.random() * 256).toString(16).padStart(2, "0");
function freeLinkName(): string {
  const taken = run(["ip", "-o", "link"]);
  for (;;) {
    const name = `dokrust-test-${hex2()}`;
    if (!taken.includes(` ${name}:`) && !taken.includes(` ${name}@`)) return name;
  }
}
/** A 10.X.0.0/16 that no route of the host touches. */
function freeSecondOctet(avoid: number[]): number {
  const routes = run(["ip", "-4", "route", "show", "table", "all"]);
  for (;;) {
    const x = 200 + Math.floor(Math.random() * 50);
    if (!avoid.includes(x) && !routes.includes(`10.${x}.`)) return x;
  }
}

const BRIDGE = ready ? freeLinkName() : "";
const UPLINK = ready ? freeLinkName() : "";
const NETNS = `dokrust-test-${RUN_ID}`;
const TABLE = `dokrust-test-${RUN_ID}`;
const NET_ROOT = `${TMP_PREFIX}-net`;
const NET_X = ready ? freeSecondOctet([]) : 0;
const SRV_X = ready ? freeSecondOctet([NET_X]) : 0;
const SUBNET = `10.${NET_X}.0.0/16`;
const SERVER = `10.${SRV_X}.0.2`;
const UPLINK_IP = `10.${SRV_X}.0.1`;

// Every dokrust this file starts uses the test's network.
Object.assign(process.env, {
  DOKRUST_NET_ROOT: NET_ROOT,
  DOKRUST_BRIDGE: BRIDGE,
  DOKRUST_NFT_TABLE: TABLE,
  DOKRUST_SUBNET: SUBNET,
  DOKRUST_NET_UPLINKS: UPLINK,
});

const libc = dlopen("libc.so.6", { waitpid: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i32 } });
const waitpid = libc.symbols.waitpid;

/** dokrust on the bridge network: the helpers give other tests --net none. */
function bridged(args: string[]): string[] {
  return args.some((a) => /^(--net|-k)(=|$)/.test(a)) ? args : ["--net", "bridge", ...args];
}
const dokrustNet = (args: string[], options?: StartOptions) => dokrust(bridged(args), options);
const startNet = (args: string[], options?: StartOptions) => startDokrust(bridged(args), options);

let server: ReturnType<typeof Bun.spawn> | undefined;

/**
 * A container script that runs `setup`, says "up" and waits; pid 1 only
 * dies of the SIGTERM dokrust forwards if it handles it, hence the trap.
 */
function serve(setup: string): string[] {
  return sh(`trap 'exit 0' TERM; ${setup}; echo up; sleep 30 & wait`);
}
const seenVeths = new Set<string>();

function allocations(): Array<{ ip: string; veth: string; name?: string }> {
  try {
    return JSON.parse(readFileSync(`${NET_ROOT}/${BRIDGE}/allocations.json`, "utf8")).allocations;
  } catch {
    return [];
  }
}

function bridgePorts(): string[] {
  if (!run(["ip", "-o", "link"]).includes(` ${BRIDGE}:`)) return [];
  // the bridge goes when its last container leaves: it may vanish meanwhile
  return run(["ip", "-o", "link", "show", "master", BRIDGE], true)
    .split("\n")
    .filter(Boolean)
    .map((l) => l.split(":")[1]!.trim().split("@")[0]!);
}

function mapElements(): string {
  const out = run(["nft", "list", "table", "ip", TABLE], true);
  return [...out.matchAll(/elements = \{([^}]*)\}/g)].map((m) => m[1]!.trim()).join(" ");
}

/** Everything of a container that may remain on the host after it ended. */
function netLeaks(): string[] {
  const leaks: string[] = [];
  for (const a of allocations()) leaks.push(`allocation ${a.ip} (${a.name ?? a.veth}) remains`);
  for (const p of bridgePorts()) leaks.push(`link ${p} remains on ${BRIDGE}`);
  const links = run(["ip", "-o", "link"]);
  for (const v of seenVeths) if (links.includes(` ${v}@`) || links.includes(` ${v}:`)) leaks.push(`veth ${v} remains`);
  const elements = mapElements();
  if (elements) leaks.push(`published ports remain: ${elements}`);
  const routes = run(["ip", "-4", "route"]).split("\n").filter((r) => r.includes(`10.${NET_X}.`) && !r.includes(`dev ${BRIDGE} `));
  for (const r of routes) leaks.push(`route remains: ${r}`);
  const addrs = run(["ip", "-4", "-o", "addr"]).split("\n").filter((a) => a.includes(`10.${NET_X}.`) && !a.includes(` ${BRIDGE} `));
  for (const a of addrs) leaks.push(`address remains: ${a}`);
  return leaks;
}

/** Remember the host veths while containers run, to check they go. */
async function watchVeths(until: Promise<unknown>): Promise<void> {
  let done = false;
  void until.finally(() => (done = true));
  while (!done) {
    for (const p of bridgePorts()) seenVeths.add(p);
    await Bun.sleep(20);
  }
}

async function settleLeaks(): Promise<string[]> {
  const deadline = Date.now() + 2000;
  let leaks = netLeaks();
  while (leaks.length && Date.now() < deadline) {
    await Bun.sleep(50);
    leaks = netLeaks();
  }
  return leaks;
}

describe.skipIf(!ready)("container networking", () => {
  beforeAll(() => {
    // The test's own "outside world": a namespace with a server, a veth to it.
    run(["ip", "netns", "add", NETNS]);
    run(["ip", "link", "add", UPLINK, "type", "veth", "peer", "name", "eth0", "netns", NETNS]);
    run(["ip", "addr", "add", `${UPLINK_IP}/24`, "dev", UPLINK]);
    run(["ip", "link", "set", UPLINK, "up"]);
    run(["ip", "-n", NETNS, "addr", "add", `${SERVER}/24`, "dev", "eth0"]);
    run(["ip", "-n", NETNS, "link", "set", "eth0", "up"]);
    run(["ip", "-n", NETNS, "link", "set", "lo", "up"]);
    // A web server (one process: no forked child may end up a zombie of
    // the test, which is a subreaper) answering "outside", or on /peer the
    // address the connection came from.  perl-base is essential in Debian.
    const script = [
      "use IO::Socket::INET;",
      "my $s = IO::Socket::INET->new(LocalPort => 8000, Listen => 16, ReuseAddr => 1) or die $!;",
      "while (my $c = $s->accept) {",
      '  my $req = <$c>; my $body = $req =~ m{/peer} ? $c->peerhost . "\n" : "outside\n";',
      '  print $c "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " . length($body) . "\r\n\r\n$body"; close $c;',
      "}",
    ].join("\n");
    server = Bun.spawn(["ip", "netns", "exec", NETNS, "perl", "-e", script], { stdout: "ignore", stderr: "ignore" });
  });

  afterEach(async () => {
    const leaks = await settleLeaks();
    expect(leaks).toEqual([]);
  });

  afterAll(async () => {
    server?.kill("SIGKILL");
    await server?.exited;
    const pruned = await start([BIN, "network", "prune"], { env: { DOKRUST_ROOT: stateRoot() } }).result;
    run(["ip", "link", "del", UPLINK], true);
    run(["ip", "netns", "del", NETNS], true);
    expect(pruned.code).toBe(0);
    expect(run(["ip", "-o", "link"])).not.toContain(` ${BRIDGE}:`);
    expect(run(["nft", "list", "tables"])).not.toContain(TABLE);
    expect(existsSync(`${NET_ROOT}/${BRIDGE}`)).toBe(false);
    run(["rm", "-rf", NET_ROOT]);
  });

  test("a container gets eth0 with an address of the subnet, a default route via the bridge, and /etc/hosts", async () => {
    const r = await dokrustNet(["-r", BUSYBOX, "--name", "solo", ...sh("ip -4 -o addr show eth0; ip route; cat /etc/hosts")]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const ip = /inet (10\.\d+\.\d+\.\d+)\/16/.exec(r.stdout)?.[1];
    expect(ip).toStartWith(`10.${NET_X}.`);
    expect(r.stdout).toContain(`default via 10.${NET_X}.0.1 dev eth0`);
    expect(r.stdout).toContain(`${ip}\tsolo dokka\n`);
  });

  test("containers reach each other by name", async () => {
    const www = tempDir("www");
    writeFileSync(`${www}/index.html`, "from web\n");
    const web = startNet(["-r", BUSYBOX, "--name", "web", "-m", `${www}:/srv`, ...serve("httpd -p 80 -h /srv")]);
    const watching = watchVeths(web.result);
    try {
      await web.waitFor("up");
      const r = await dokrustNet(["-r", BUSYBOX, "--name", "client", ...sh("grep web /etc/hosts; wget -qO- http://web/")]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toMatch(new RegExp(`^10\\.${NET_X}\\.\\d+\\.\\d+\\tweb dokka\\nfrom web\\n$`));
      // web's /etc/hosts learnt about client while client ran, and forgot it after
      const hosts = await dokrustNet(["-r", BUSYBOX, "--net", "container:web", ...sh("cat /etc/hosts")]);
      expect(hosts.code).toBe(0);
    } finally {
      web.proc.kill("SIGTERM");
      await web.result;
      await watching;
    }
  });

  test("the host reaches a published TCP port on 127.0.0.1, and on the port of -p IP:HOST:CONTAINER", async () => {
    const www = tempDir("www");
    writeFileSync(`${www}/index.html`, "published\n");
    const port = 20000 + Math.floor(Math.random() * 20000);
    const web = startNet(["-r", BUSYBOX, "-p", `${port}:80`, "-p", `127.0.0.1:${port + 1}:80`, "-m", `${www}:/srv`, ...serve("httpd -p 80 -h /srv")]);
    const watching = watchVeths(web.result);
    try {
      await web.waitFor("up");
      for (const p of [port, port + 1]) {
        const res = await fetch(`http://127.0.0.1:${p}/`, { signal: AbortSignal.timeout(5000) });
        expect(await res.text()).toBe("published\n");
      }
    } finally {
      web.proc.kill("SIGTERM");
      await web.result;
      await watching;
    }
    expect(mapElements()).toBe("");
  });

  test.skipIf(!haveDebian)("the host reaches a published UDP port on 127.0.0.1", async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const script = 'use IO::Socket::INET; $|=1; my $s = IO::Socket::INET->new(LocalPort => 81, Proto => "udp") or die "bind: $!"; print "up\\n"; $s->recv(my $m, 100); print "got $m\\n";';
    const c = startNet(["-r", DEBIAN, "-p", `${port}:81/udp`, "--", "perl", "-e", script]);
    const watching = watchVeths(c.result);
    try {
      await c.waitFor("up");
      const socket = await Bun.udpSocket({});
      for (let i = 0; i < 20 && !c.stdout().includes("got"); i++) {
        socket.send("ping over udp", port, "127.0.0.1");
        await Bun.sleep(100);
      }
      socket.close();
      const r = await c.result;
      expect(r.stdout).toBe("up\ngot ping over udp\n");
      expect(r.code).toBe(0);
    } finally {
      c.proc.kill("SIGTERM");
      await c.result.catch(() => {});
      await watching;
    }
  });

  test("outbound traffic leaves masqueraded: a server outside sees the host's address", async () => {
    const r = await dokrustNet(["-r", BUSYBOX, ...sh(`wget -qO- http://${SERVER}:8000/ && wget -qO- http://${SERVER}:8000/peer`)]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(`outside\n${UPLINK_IP}\n`);
    expect(r.code).toBe(0);
  });

  test("50 containers started at once hold 50 distinct addresses", async () => {
    const dir = tempDir("go");
    const n = 50;
    const runs = Array.from({ length: n }, () =>
      startNet(["-r", BUSYBOX, "-m", `${dir}:/srv`, ...sh("ip -4 -o addr show eth0; while [ ! -e /srv/now ]; do sleep 0.1; done")], { timeoutMs: 60_000 }),
    );
    try {
      await Promise.all(runs.map((r) => r.waitFor("inet", 50_000)));
      const ips = runs.map((r) => /inet (\S+)\//.exec(r.stdout())?.[1]);
      expect(new Set(ips).size).toBe(n);
      expect(allocations().length).toBe(n);
    } finally {
      writeFileSync(`${dir}/now`, "");
    }
    const results = await Promise.all(runs.map((r) => r.result));
    expect(results.map((r) => r.code)).toEqual(Array(n).fill(0));
  }, 90_000);

  test("--net none has only lo; --net host sees the host's links; --net container:NAME shares NAME's", async () => {
    const none = await dokrustNet(["-r", BUSYBOX, "--net", "none", ...sh("ls /sys/class/net")]);
    expect(none.stdout).toBe("lo\n");
    const host = await dokrustNet(["-r", BUSYBOX, "--net", "host", ...sh("ls /sys/class/net")]);
    expect(host.stdout.split("\n")).toContain(UPLINK);
    const first = startNet(["-r", BUSYBOX, "--name", "first", ...serve("ip -4 -o addr show eth0")]);
    const watching = watchVeths(first.result);
    try {
      await first.waitFor("inet");
      const ip = /inet (\S+)\//.exec(first.stdout())?.[1];
      const shared = await dokrustNet(["-r", BUSYBOX, "--net", "container:first", ...sh("ip -4 -o addr show eth0")]);
      expect(shared.code).toBe(0);
      expect(shared.stdout).toContain(`inet ${ip}/16`);
    } finally {
      first.proc.kill("SIGTERM");
      await first.result;
      await watching;
    }
  });

  test("-k NAME puts a running container on the network", async () => {
    const c = startNet(["-r", BUSYBOX, "--net", "none", "--name", "late", ...sh("echo up; while ! ip -4 -o addr show eth0 2>/dev/null | grep -q inet; do sleep 0.1; done; ip -4 -o addr show eth0; wget -qO- http://" + SERVER + ":8000/")]);
    const watching = watchVeths(c.result);
    try {
      await c.waitFor("up");
      const k = await dokrustNet(["-k", "late"]);
      expect(k.stderr).toBe("");
      expect(k.code).toBe(0);
      expect(k.stdout).toMatch(new RegExp(`^late: eth0 10\\.${NET_X}\\.\\d+\\.\\d+ on ${BRIDGE}\\n$`));
      const r = await c.result;
      expect(r.stdout).toContain("outside\n");
    } finally {
      c.proc.kill("SIGTERM");
      await c.result;
      await watching;
    }
    // The container owned its address; the next command reclaims it.
    expect(allocations().length).toBe(1);
    expect((await dokrustNet(["-r", BUSYBOX, "--", "true"])).code).toBe(0);
  });

  test("what a killed dokrust left is reclaimed by the next command", async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const c = startNet(["-r", BUSYBOX, "-p", `${port}:80`, ...serve("true")]);
    const watching = watchVeths(c.result);
    await c.waitFor("up");
    // dokrust, its executor and the container all die at once, as in a crash.
    const orphans = descendants(c.pid);
    for (const pid of [c.pid, ...orphans]) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // the executor and the container die with dokrust (parent-death signals)
      }
    }
    await c.result;
    // They come back to this process (a subreaper): reap them.
    await Bun.sleep(50);
    for (const pid of orphans) waitpid(pid, null, 0);
    await watching;
    expect(allocations().length).toBe(1);
    expect(mapElements()).toContain(String(port));
    const next = await dokrustNet(["-r", BUSYBOX, "-p", `${port}:80`, "--", "true"]);
    expect(next.stderr).toBe("");
    expect(next.code).toBe(0);
    // What the rest of dokrust leaves after a crash is not this file's subject.
    await Bun.sleep(100);
    for (const id of readdirSync(stateRoot())) {
      for (const dir of dokrustCgroups().filter((d) => d.endsWith(`/dokrust-${id}`))) rmdirSync(dir);
      rmSync(`${stateRoot()}/${id}`, { recursive: true, force: true });
    }
  });

  describe("bad input: one line, exit 125, nothing created", () => {
    async function refused(args: string[], message: RegExp, env: Record<string, string> = {}): Promise<void> {
      const before = run(["ip", "-o", "link"]).split("\n").length;
      const r = await dokrustNet(args, { env });
      expect(r.code).toBe(125);
      expect(r.stdout).toBe("");
      expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(message);
      expect(run(["ip", "-o", "link"]).split("\n").length).toBe(before);
    }

    test("a port another container publishes", async () => {
      const port = 20000 + Math.floor(Math.random() * 20000);
      const c = startNet(["-r", BUSYBOX, "--name", "holder", "-p", `${port}:80`, ...serve("true")]);
      const watching = watchVeths(c.result);
      try {
        await c.waitFor("up");
        await refused(["-r", BUSYBOX, "-p", `127.0.0.1:${port}:81`, "--", "true"], new RegExp(`host port ${port}/tcp is already published by container holder`));
        expect(allocations().length).toBe(1);
      } finally {
        c.proc.kill("SIGTERM");
        await c.result;
        await watching;
      }
    });

    test("a port out of range, a malformed -p, an unknown network, a missing container", async () => {
      await refused(["-r", BUSYBOX, "-p", "65536:80", "--", "true"], /^dokrust: -p 65536:80: the host port 65536 is out of range/);
      await refused(["-r", BUSYBOX, "-p", "80", "--", "true"], /^dokrust: -p 80: expected \[IP:\]HOST:CONTAINER/);
      await refused(["-r", BUSYBOX, "--net", "mesh", "--", "true"], /^dokrust: --net mesh: unknown network/);
      await refused(["-r", BUSYBOX, "--net", "container:nobody", "--", "true"], /^dokrust: --net container:nobody: no running container is named nobody/);
      await refused(["-k", "nobody"], /^dokrust: -k nobody: no running container is named nobody/);
    });

    test("a subnet that overlaps a host route", async () => {
      const other = freeLinkName();
      await refused(["-r", BUSYBOX, "--", "true"], new RegExp(`subnet 10\\.${SRV_X}\\.0\\.0/16 overlaps the host route 10\\.${SRV_X}\\.0\\.0/24 dev ${UPLINK}`), {
        DOKRUST_BRIDGE: other,
        DOKRUST_SUBNET: `10.${SRV_X}.0.0/16`,
        DOKRUST_NET_ROOT: `${NET_ROOT}-other`,
        DOKRUST_NFT_TABLE: `${TABLE}-other`,
      });
      expect(run(["nft", "list", "tables"])).not.toContain(`${TABLE}-other`);
      run(["rm", "-rf", `${NET_ROOT}-other`]);
    });
  });
});

describe.skipIf(!ready || !existsSync("/usr/lib/cni/bridge"))("--net cni:NAME", () => {
  const cniBridge = ready ? freeLinkName() : "";
  const x = ready ? freeSecondOctet([NET_X, SRV_X]) : 0;
  const confDir = `${TMP_PREFIX}-cni`;
  const env = { DOKRUST_CNI_CONF_DIR: confDir, CNI_PATH: "/usr/lib/cni" };

  beforeAll(() => {
    mkdirSync(confDir, { recursive: true });
    const ipam = { type: "host-local", subnet: `10.${x}.0.0/24`, dataDir: `${confDir}/ipam`, routes: [{ dst: "0.0.0.0/0" }] };
    // isGateway false: with it, the bridge plugin turns on the host-wide
    // net.ipv4.ip_forward, which tests must not change.
    const conf = { cniVersion: "0.4.0", name: "dokrust-test", plugins: [{ type: "bridge", bridge: cniBridge, isGateway: false, ipMasq: false, ipam }] };
    writeFileSync(`${confDir}/10-dokrust-test.conflist`, JSON.stringify(conf));
  });

  afterAll(() => {
    // The bridge plugin leaves its bridge behind by design.
    run(["ip", "link", "del", cniBridge], true);
    rmSync(confDir, { recursive: true, force: true });
  });

  test("the plugins ADD the container to the network and DEL it when it ends", async () => {
    const forwarding = readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8");
    const r = await dokrust(["--net", "cni:dokrust-test", "--name", "cni1", "-r", BUSYBOX, ...sh("ip -4 -o addr show eth0; ip route; grep cni1 /etc/hosts")], { env });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`inet 10.${x}.0.2/24`);
    expect(r.stdout).toContain(`default via 10.${x}.0.1 dev eth0`);
    expect(r.stdout).toContain(`10.${x}.0.2\tcni1 dokka`);
    // host-local keeps one file per address it handed out: DEL removed it.
    expect(readdirSync(`${confDir}/ipam/dokrust-test`).filter((f) => f.startsWith("10."))).toEqual([]);
    expect(run(["ip", "-o", "link", "show", "master", cniBridge])).toBe("");
    expect(readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8")).toBe(forwarding);
  });

  test("an unknown CNI network is one line and exit 125", async () => {
    const r = await dokrust(["--net", "cni:nowhere", "-r", BUSYBOX, "--", "true"], { env });
    expect(r.code).toBe(125);
    expect(r.stderr).toBe(`dokrust: --net cni:nowhere: no network named nowhere in ${confDir}\n`);
  });
});

