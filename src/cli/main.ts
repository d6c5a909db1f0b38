/**
 * The `fleetvisor` command, on `@effect/cli` (help, completions and typed options for free).
 *
 * ```text
 * fleetvisor serve [--port 8080 …]                 run the service (flags: fleetvisor serve --help)
 * fleetvisor inspect --url http://host:8080 [--token T] [--json]
 *                                                  print the actor tree of a running service
 * fleetvisor token add|list|revoke …               the bearer tokens of AUTH=tokens
 * fleetvisor robots | watch <robot> | stop <robot>|--all | reset <robot>
 *                                                  the fleet, as a dashboard sees it (fleet.ts)
 * fleetvisor tree                                  the same as inspect
 * ```
 *
 * `serve` hands its arguments to the service as they are: its flags are the service's settings
 * (`ServiceConfig`), which parse them themselves.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { CliError, ExitCode } from "./CliError.js"
import * as Fleet from "./fleet.js"
import { inspect, InspectError } from "./inspect.js"
import * as Token from "./token.js"

const inspectOptions = {
  url: Fleet.url,
  tokenFile: Fleet.tokenFile,
  token: Options.text("token").pipe(
    Options.withDescription("An admin bearer token; prefer --token-file or $FLEETVISOR_TOKEN (a flag shows in `ps`)"),
    Options.optional
  ),
  json: Options.boolean("json").pipe(Options.withDescription("Print /admin/actors as JSON"))
}

const inspectTree = ({ json, token, tokenFile, url }: {
  readonly json: boolean
  readonly token: Option.Option<string>
  readonly tokenFile: Option.Option<string>
  readonly url: string
}) =>
  Effect.gen(function*() {
    const bearer = Option.isSome(token)
      ? token.value
      : (yield* Fleet.tokenOf(tokenFile)) ?? (process.env.ADMIN_TOKEN || undefined)
    const text = yield* Effect.tryPromise({
      try: () => inspect({ url, token: bearer || undefined, json }),
      catch: (error) => error
    }).pipe(Effect.catchAll((error) =>
      error instanceof InspectError ? new CliError({ message: error.message }) : Effect.die(error)
    ))
    yield* Console.log(text)
  })

const treeDescription = "Print the actor tree of a running service, as the tests render it"
const inspectCommand = Command.make("inspect", inspectOptions, inspectTree).pipe(Command.withDescription(treeDescription))
const treeCommand = Command.make("tree", inspectOptions, inspectTree).pipe(Command.withDescription(treeDescription))

const fleetvisor = Command.make("fleetvisor").pipe(
  Command.withDescription("The fleetvisor service and its tools; `fleetvisor serve [flags]` runs the service (see serve --help)"),
  Command.withSubcommands([...Fleet.commands, treeCommand, inspectCommand, Token.command])
)

const run = Command.run(fleetvisor, { name: "fleetvisor", version: "0.1.0" })

/** Runs the command; resolves with its exit code (`ExitCode`). */
export const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  if (argv[0] === "serve") {
    const service = await import("../main.js")
    return service.main(argv.slice(1))
  }
  const args = argv.length === 0 ? ["--help"] : argv
  return Effect.runPromise(
    run(["node", "fleetvisor", ...args]).pipe(
      Effect.as(0),
      Effect.catchIf(ValidationError.isValidationError, () => Effect.succeed(ExitCode.usage)),
      Effect.catchTag("CliError", (error) =>
        Effect.as(Console.error(`fleetvisor ${args[0]}: ${error.message}`), error.exitCode ?? ExitCode.refused)),
      Effect.provide(NodeContext.layer)
    )
  )
}
