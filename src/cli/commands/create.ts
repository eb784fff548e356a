/** `create [--bundle] [--pid-file] [--console-socket] [--preserve-fds N] ID`. */
import { UsageError } from "../../errors.ts";
import { createContainer } from "../../runtime/container.ts";
import { intOption, oneId, parseCommand, type Globals } from "./common.ts";

/** Options create and run share. */
export const CREATE_OPTIONS = {
  bundle: { type: "string", short: "b" },
  "pid-file": { type: "string" },
  "console-socket": { type: "string" },
  "no-pivot": { type: "boolean" },
  "no-new-keyring": { type: "boolean" },
  "preserve-fds": { type: "string" },
} as const;

type Parsed = ReturnType<typeof parseCommand<typeof CREATE_OPTIONS>>["values"];

/** CreateOptions from create's (or run's) parsed options. */
export function createOptions(values: Parsed, globals: Globals, id: string) {
  if (values["no-pivot"]) throw new UsageError("--no-pivot is not supported: dokrust always uses pivot_root");
  const options: Parameters<typeof createContainer>[0] = {
    root: globals.root,
    id,
    bundle: values.bundle ?? ".",
    preserveFds: intOption("preserve-fds", values["preserve-fds"], 0),
  };
  if (values["pid-file"]) options.pidFile = values["pid-file"];
  if (values["console-socket"]) options.consoleSocket = values["console-socket"];
  return options;
}

export async function run(args: string[], globals: Globals): Promise<number> {
  const { values, positionals } = parseCommand("create", args, CREATE_OPTIONS);
  const id = oneId("create", positionals);
  await createContainer(createOptions(values, globals, id));
  return 0;
}
