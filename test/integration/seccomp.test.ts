/**
 * Seccomp in the dokrust face, seen from inside real containers: the
 * default profile denies what docker's denies (with EPERM) and lets
 * ordinary programs run; `--security-opt seccomp=unconfined` lifts it;
 * a profile file with errno values and argument conditions takes effect;
 * `--security-opt no-new-privileges` sets the process's no_new_privs.
 */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { BUSYBOX, DEBIAN, dokrust, haveDebian, ready, sh, tempDir, tempPath, useLeakCheck } from "./helpers.ts";

useLeakCheck();

/** Fields of /proc/self/status as the container's shell sees them. */
async function status(options: string[]): Promise<Record<string, string>> {
  const r = await dokrust(["-r", BUSYBOX, ...options, ...sh("cat /proc/self/status")]);
  expect(r.code).toBe(0);
  return Object.fromEntries(r.stdout.split("\n").map((l) => l.split(/:\s*/, 2) as [string, string]));
}

function profileFile(profile: object): string {
  const path = tempPath("seccomp.json");
  writeFileSync(path, JSON.stringify(profile));
  return path;
}

describe.skipIf(!ready)("seccomp", () => {
  test("a container runs under a seccomp filter by default, without no_new_privs", async () => {
    const s = await status([]);
    expect(s.Seccomp).toBe("2");
    expect(s.Seccomp_filters).toBe("1");
    expect(s.NoNewPrivs).toBe("0");
  });

  test("the default profile denies creating namespaces with EPERM; seccomp=unconfined lifts it", async () => {
    // Creating a user namespace needs no capability: only seccomp stops it.
    const script = "unshare -U true && echo created";
    const confined = await dokrust(["-r", BUSYBOX, ...sh(script)]);
    expect(confined.code).not.toBe(0);
    expect(confined.stderr).toContain("Operation not permitted");
    const unconfinedArgs = ["--security-opt", "seccomp=unconfined", ...sh(`grep Seccomp: /proc/self/status; ${script}`)];
    const unconfined = await dokrust(["-r", BUSYBOX, ...unconfinedArgs]);
    expect(unconfined.code).toBe(0);
    expect(unconfined.stdout).toMatch(/^Seccomp:\s+0\ncreated\n$/);
  });

  test("the default profile denies what the capabilities also deny, and CAP_SYS_ADMIN unlocks mount and unshare", async () => {
    const script = "mount -t tmpfs none /tmp && unshare -U true && hostname other && echo done";
    const plain = await dokrust(["-r", BUSYBOX, ...sh(script)]);
    expect(plain.code).not.toBe(0);
    expect(plain.stdout).toBe("");
    const admin = await dokrust(["-r", BUSYBOX, "--cap-add", "SYS_ADMIN", ...sh(script)]);
    expect(admin.stderr).toBe("");
    expect(admin.stdout).toBe("done\n");
  });

  test("ordinary programs work under the default profile: a shell, ps, files, a web server and client on loopback", async () => {
    const www = tempDir("www");
    writeFileSync(`${www}/index.html`, "hello from httpd\n");
    const script = [
      "set -e",
      "ls -la / >/dev/null",
      "ps -o pid,comm | grep -q ps",
      "seq 1 2000 | sort -rn | head -n 1",
      "mkdir /dev/shm/x && echo data > /dev/shm/x/f && tar -cf - -C /dev/shm x | tar -tf - | sort | tr '\\n' ' ' && echo",
      "find /etc -name hostname",
      "sleep 0.1 & wait",
      "httpd -f -p 127.0.0.1:8080 -h /srv & sleep 0.3",
      "wget -q -O - http://127.0.0.1:8080/index.html",
      "kill %1",
      "date +%Y >/dev/null && uname -m && id -u",
    ].join("\n");
    const r = await dokrust(["-r", BUSYBOX, "-m", `${www}:/srv:ro`, ...sh(script)]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("2000\nx/ x/f \n/etc/hostname\nhello from httpd\nx86_64\n0\n");
  });

  test("a non-root user starts under the default profile (the filter is in place before the switch of ids)", async () => {
    const r = await dokrust(["-r", BUSYBOX, "-u", "1000:1000", ...sh("id -u; id -g; grep Seccomp: /proc/self/status")]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^1000\n1000\nSeccomp:\s+2\n$/);
  });

  test.skipIf(!haveDebian)("glibc programs work: threads (clone3 gets ENOSYS, glibc uses clone), fork, personality", async () => {
    const script = [
      "set -e",
      "perl -e 'print syscall(435, 0, 0) == -1 ? \"clone3: $!\\n\" : \"clone3 ran\\n\"'",
      // sort sorts a large input with worker threads: pthread_create fails
      // (and sort quietly works alone) unless glibc falls back to clone.
      "seq 1 2000000 > /dev/shm/in",
      "sort --parallel=4 -S 100M -T /dev/shm -n /dev/shm/in > /dev/shm/out & p=$!",
      "most=1; while t=$(awk '/^Threads/ { print $2 }' /proc/$p/status 2>/dev/null); do [ \"$t\" -gt $most ] && most=$t; done",
      "wait $p; tail -n 1 /dev/shm/out; [ $most -gt 1 ] && echo threads",
      "perl -e 'my $p = fork; if ($p) { waitpid($p, 0); print \"forked\\n\" } else { exit 0 }'",
      "setarch linux32 uname -m",
    ].join("\n");
    const r = await dokrust(["-r", DEBIAN, ...sh(script, "/bin/bash")]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("clone3: Function not implemented\n2000000\nthreads\nforked\ni686\n");
  });

  test("a profile file takes effect: errnoRet, an argument condition, a kill action, and a warning for an unknown name", async () => {
    const PER_LINUX32 = 8;
    const path = profileFile({
      defaultAction: "SCMP_ACT_ALLOW",
      syscalls: [
        { names: ["personality"], action: "SCMP_ACT_ERRNO", errnoRet: 38, args: [{ index: 0, value: PER_LINUX32, op: "SCMP_CMP_EQ" }] },
        { names: ["sethostname"], action: "SCMP_ACT_KILL_PROCESS" },
        { names: ["no_such_call"], action: "SCMP_ACT_ERRNO" },
      ],
    });
    const script = "linux64 uname -m; linux32 uname -m; echo linux32=$?; unshare -U true && echo unshared; (hostname x); echo hostname=$?";
    const r = await dokrust(["-r", BUSYBOX, "--security-opt", `seccomp=${path}`, ...sh(script)]);
    expect(r.code).toBe(0);
    // 38: ENOSYS, "Function not implemented"; 159: 128 + SIGSYS.
    expect(r.stdout).toBe("x86_64\nlinux32=1\nunshared\nhostname=159\n");
    expect(r.stderr).toContain("Function not implemented");
    expect(r.stderr).toContain('dokrust: warning: seccomp: unknown system call "no_such_call"');
  });

  test("a docker-format profile file: rules included for the container's capabilities only", async () => {
    const path = profileFile({
      defaultAction: "SCMP_ACT_ALLOW",
      archMap: [{ architecture: "SCMP_ARCH_X86_64", subArchitectures: ["SCMP_ARCH_X86", "SCMP_ARCH_X32"] }],
      syscalls: [{ names: ["unshare"], action: "SCMP_ACT_ERRNO", errnoRet: 13, excludes: { caps: ["CAP_SYS_ADMIN"] } }],
    });
    const denied = await dokrust(["-r", BUSYBOX, "--security-opt", `seccomp=${path}`, ...sh("unshare -U true")]);
    expect(denied.stderr).toContain("Permission denied");
    const admin = ["--cap-add", "SYS_ADMIN", "--security-opt", `seccomp=${path}`];
    const allowed = await dokrust(["-r", BUSYBOX, ...admin, ...sh("unshare -U true && echo ok")]);
    expect(allowed.stdout).toBe("ok\n");
  });

  test("--security-opt no-new-privileges sets NoNewPrivs, with the filter in place", async () => {
    const s = await status(["--security-opt", "no-new-privileges"]);
    expect(s.NoNewPrivs).toBe("1");
    expect(s.Seccomp).toBe("2");
    const unconfined = await status(["--security-opt", "no-new-privileges=true", "--security-opt", "seccomp=unconfined"]);
    expect(unconfined.NoNewPrivs).toBe("1");
    expect(unconfined.Seccomp).toBe("0");
  });

  test("a profile dokrust cannot honour is refused before anything is created", async () => {
    const notify = profileFile({ defaultAction: "SCMP_ACT_NOTIFY" });
    const r = await dokrust(["-r", BUSYBOX, "--security-opt", `seccomp=${notify}`, "--", "/bin/true"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("SCMP_ACT_NOTIFY needs a seccomp agent");
    const broken = tempPath("broken.json");
    writeFileSync(broken, "{ not json");
    const bad = await dokrust(["-r", BUSYBOX, "--security-opt", `seccomp=${broken}`, "--", "/bin/true"]);
    expect(bad.code).toBe(125);
    expect(bad.stderr).toContain(`seccomp profile ${broken}: not JSON`);
  });
});
