/**
 * The `fleetvisor` command.
 *
 * ```text
 * fleetvisor serve [--port 8080 …]                 run the service (flags: fleetvisor serve --help)
 * fleetvisor inspect --url http://host:8080 [--token T] [--json]
 *                                                  print the actor tree of a running service
 * ```
 *
 * @since 0.1.0
 */
import { inspect, InspectError } from "./inspect.js"

const usage = `Usage:
  fleetvisor serve [flags]                            run the service (see fleetvisor serve --help)
  fleetvisor inspect [--url URL] [--token T] [--json] print the actor tree of a running service
      --url     the service, default http://127.0.0.1:8080
      --token   the admin bearer token (default: $ADMIN_TOKEN)
      --json    print /admin/actors as JSON`

const options = (args: ReadonlyArray<string>): Map<string, string | true> => {
  const values = new Map<string, string | true>()
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (!arg.startsWith("--")) throw new InspectError(`unexpected argument ${arg}`)
    const [name, inline] = arg.includes("=") ? [arg.slice(2, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg.slice(2)]
    if (name === "json" || name === "help") values.set(name, true)
    else if (name === "url" || name === "token") {
      const value = inline ?? args[++i]
      if (value === undefined) throw new InspectError(`--${name} needs a value`)
      values.set(name, value)
    } else throw new InspectError(`unknown option --${name}`)
  }
  return values
}

/** Runs the command; resolves with the exit code. */
export const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  const [command, ...rest] = argv
  if (command === "serve") {
    const service = await import("../main.js")
    return service.main(rest)
  }
  if (command !== "inspect") {
    process.stdout.write(`${usage}\n`)
    return command === undefined || command === "help" || command === "--help" ? 0 : 64
  }
  try {
    const given = options(rest)
    if (given.has("help")) {
      process.stdout.write(`${usage}\n`)
      return 0
    }
    const token = given.get("token") ?? process.env.ADMIN_TOKEN
    const text = await inspect({
      url: String(given.get("url") ?? "http://127.0.0.1:8080"),
      token: typeof token === "string" && token !== "" ? token : undefined,
      json: given.has("json")
    })
    process.stdout.write(`${text}\n`)
    return 0
  } catch (error) {
    if (!(error instanceof InspectError)) throw error
    process.stderr.write(`fleetvisor inspect: ${error.message}\n`)
    return 1
  }
}
