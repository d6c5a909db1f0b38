import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import * as readline from "node:readline"

/**
 * Runs a TypeScript script in a child process that prints one JSON acknowledgement per line,
 * kills it with SIGKILL (`kill -9`) once it has printed `acks` of them, and returns every
 * acknowledgement it printed. Fails if the script exits by itself.
 */
export const killAfterAcks = <A>(script: string, args: ReadonlyArray<string>, acks: number) =>
  Effect.acquireUseRelease(
    Effect.sync(() => spawn(process.execPath, ["--import", "tsx", script, ...args], { stdio: ["ignore", "pipe", "inherit"] })),
    (child) =>
      Effect.async<Array<A>, Error>((resume) => {
        const acknowledged: Array<A> = []
        readline.createInterface({ input: child.stdout! }).on("line", (line) => {
          acknowledged.push(JSON.parse(line))
          if (acknowledged.length === acks) child.kill("SIGKILL")
        })
        child.on("exit", (code, signal) =>
          resume(
            signal === "SIGKILL"
              ? Effect.succeed(acknowledged)
              : Effect.fail(new Error(`${script} exited by itself (code ${code})`))
          ))
      }),
    (child) => Effect.sync(() => child.kill("SIGKILL"))
  )
