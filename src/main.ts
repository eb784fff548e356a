/**
 * dokrust's entry point: picks the face (the dokrust command line, or
 * runc's when the first word is one of its commands), runs it, and turns
 * any error into one line on stderr and an exit code.
 */
import { DokrustError, EXIT_RUNTIME } from "./errors.ts";

const OCI_COMMANDS = new Set([
  "create", "start", "state", "kill", "delete", "run", "exec", "ps", "list",
  "pause", "resume", "update", "events", "spec", "features", "checkpoint", "restore",
]);

/**
 * The dokrust face's container commands (src/cli/detached/); list, kill
 * and exec are runc's too, and go to runc's face when a global option
 * (--root ...) comes before them.
 */
const DOKRUST_COMMANDS = new Set(["list", "kill", "exec", "logs", "attach", "stop", "rm", "wait", "internal"]);

/**
 * Whether a list/kill/exec command line is runc's: engines call `exec`
 * with runc-only options (--process, --pid-file, --console-socket) and
 * `kill ID SIGNAL` with the signal after the id (docker's syntax is
 * `kill -s SIGNAL NAME`).  runc's face answers in runc's error format.
 */
function speaksRunc(argv: readonly string[]): boolean {
  const [command, ...rest] = argv;
  const has = (...names: string[]) => rest.some((a) => names.some((n) => a === n || a.startsWith(`${n}=`)));
  if (command === "exec") return has("--process", "--pid-file", "--console-socket", "--preserve-fds", "--cap", "--no-new-privs");
  if (command === "kill") {
    if (has("-s", "--signal")) return false;
    return has("--all", "-a") || rest.filter((a) => !a.startsWith("-")).length === 2;
  }
  return false;
}

/** runc's global options, which only come before its command; those that take a value. */
const OCI_GLOBALS = new Map([
  ["--root", true], ["--log", true], ["--log-format", true], ["--rootless", true], ["--criu", true],
  ["--debug", false], ["--systemd-cgroup", false],
]);

/**
 * Whether the command line is runc's: global options (if any), then one
 * of its commands.  Only the first word after the globals counts, so a
 * dokrust run whose hostname or rootfs is called "start" stays a run.
 */
function speaksOci(argv: readonly string[]): boolean {
  let i = 0;
  while (i < argv.length && argv[i]!.startsWith("-")) {
    const [name = "", value] = argv[i]!.replace(/^-(?=[a-z])/, "--").split("=", 2);
    const takesValue = OCI_GLOBALS.get(name);
    if (takesValue === undefined) return unknownOption(argv, i);
    i += takesValue && value === undefined ? 2 : 1;
  }
  // a runc global option with no command after it is still runc's (its usage error)
  return i > 0 ? true : OCI_COMMANDS.has(argv[0] ?? "");
}

/** The dokrust face's options that take a value (the word after them is that value). */
const RUN_VALUE_OPTIONS = new Set([
  "-r", "--rootfs", "-c", "--command", "-n", "--hostname", "-q", "--quota", "-m", "--mount", "-k", "--network",
  "-e", "--env", "-w", "--workdir", "-u", "--user", "-p", "--publish", "--cpus", "--memory", "--pids-limit",
  "--cap-add", "--cap-drop", "--name", "--net", "--security-opt",
]);

/**
 * An option neither face's globals know: the line is runc's when its
 * first word is a runc command that is no dokrust option's value (so
 * `--bogus list` gets runc's error, `-n start -- sh` runs a container).
 */
function unknownOption(argv: readonly string[], from: number): boolean {
  for (let i = from; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === "--") return false;
    if (word.startsWith("-")) {
      if (RUN_VALUE_OPTIONS.has(word)) i++;
      continue;
    }
    return OCI_COMMANDS.has(word);
  }
  return false;
}

async function main(argv: string[]): Promise<number> {
  if (DOKRUST_COMMANDS.has(argv[0] ?? "") && !speaksRunc(argv)) {
    const { runDetachedCommand } = await import("./cli/detached/index.ts");
    return runDetachedCommand(argv);
  }
  if (speaksOci(argv) || argv[0] === "--version" || argv[0] === "-v") {
    const { runOci } = await import("./cli/oci.ts");
    return runOci(argv);
  }
  if (argv[0] === "network") {
    const { runNetworkCommand } = await import("./net/command.ts");
    return runNetworkCommand(argv.slice(1));
  }
  if (argv[0] === "image" || argv[0] === "pull") {
    const { runImage, runPull } = await import("./cli/image.ts");
    return argv[0] === "image" ? runImage(argv.slice(1)) : runPull(argv.slice(1));
  }
  const { parseRunArgs, USAGE } = await import("./cli/dokrust.ts");
  const options = parseRunArgs(argv);
  if (!options) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    throw new DokrustError("dokrust must run as root (it creates namespaces, cgroups and mounts); try sudo");
  }
  const { runForeground } = await import("./runtime/run.ts");
  return runForeground(options);
}

function report(err: unknown): number {
  if (err instanceof DokrustError) {
    process.stderr.write(`dokrust: ${err.message}\n`);
    return err.exitCode;
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`dokrust: internal error: ${message}\n`);
  if (process.env.DOKRUST_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  return EXIT_RUNTIME;
}

// No top-level await: dist/dokrust is built as CommonJS (scripts/bundle.sh),
// which has none.  No import of tty/relay.ts to restore the terminal either
// (~2 ms from source): it does so from its own "exit" handler, and the
// terminal is only ever raw once it has been loaded.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => process.exit(report(err)),
);
