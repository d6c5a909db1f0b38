#!/usr/bin/env node
// The `fleetvisor` command (`npx fleetvisor inspect --url http://127.0.0.1:8080`). The sources
// are TypeScript, run through tsx's loader as `npm start` does; there is no build step.
import { register } from "tsx/esm/api"

register()
const { main } = await import("../src/cli/main.ts")
process.exit(await main(process.argv.slice(2)))
