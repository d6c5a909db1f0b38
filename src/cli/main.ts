/**
 * The `fleetvisor` command, on `@effect/cli` (help, completions and typed options for free).
 *
 * ```text
 * fleetvisor serve [--port 8080 …]                 run the service (flags: fleetvisor serve --help)
 * fleetvisor inspect --url http://host:8080 [--token T] [--json]
 *                                                  print the actor tree of a running service
 * fleetvisor token add|list|revoke …               the bearer tokens of AUTH=tokens
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
import { CliError } from "./CliError.js"
import { inspect, InspectError } from "./inspect.js"
import * as Token from "./token.js"

const inspectCommand = Command.make("inspect", {
  url: Options.text("url").pipe(Options.withDescription("The service"), Options.withDefault("http://127.0.0.1:8080")),
  token: Options.text("token").pipe(
    Options.withDescription("An admin bearer token (default: $ADMIN_TOKEN)"),
    Options.optional
  ),
  json: Options.boolean("json").pipe(Options.withDescription("Print /admin/actors as JSON"))
}, ({ json, token, url }) =>
  Effect.gen(function*() {
    const bearer = Option.getOrElse(token, () => process.env.ADMIN_TOKEN)
    const text = yield* Effect.tryPromise({
      try: () => inspect({ url, token: bearer === undefined || bearer === "" ? undefined : bearer, json }),
      catch: (error) => error
    }).pipe(Effect.catchAll((error) =>
      error instanceof InspectError ? new CliError({ message: error.message }) : Effect.die(error)
    ))
    yield* Console.log(text)
  })).pipe(Command.withDescription("Print the actor tree of a running service, as the tests render it"))

const fleetvisor = Command.make("fleetvisor").pipe(
  Command.withDescription("The fleetvisor service and its tools; `fleetvisor serve [flags]` runs the service (see serve --help)"),
  Command.withSubcommands([inspectCommand, Token.command])
)

const run = Command.run(fleetvisor, { name: "fleetvisor", version: "0.1.0" })

/** Runs the command; resolves with the exit code (0, 1 for a failure, 64 for a usage error). */
export const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  if (argv[0] === "serve") {
    const service = await import("../main.js")
    return service.main(argv.slice(1))
  }
  const args = argv.length === 0 ? ["--help"] : argv
  return Effect.runPromise(
    run(["node", "fleetvisor", ...args]).pipe(
      Effect.as(0),
      Effect.catchIf(ValidationError.isValidationError, () => Effect.succeed(64)),
      Effect.catchTag("CliError", (error) => Effect.as(Console.error(`fleetvisor ${args[0]}: ${error.message}`), 1)),
      Effect.provide(NodeContext.layer)
    )
  )
}
