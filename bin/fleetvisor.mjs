#!/usr/bin/env node
// The `fleetvisor` command (`npx fleetvisor inspect --url http://127.0.0.1:8080`). It runs the
// compiled JavaScript in dist/ (`npm run build`), which is all an installation without dev
// dependencies has. A development checkout that was never built runs the TypeScript sources
// through tsx instead, as `npm start` does.
import * as fs from "node:fs"

const compiled = new URL("../dist/cli/main.js", import.meta.url)
const load = async () => {
  if (fs.existsSync(compiled)) return import(compiled.href)
  let tsx
  try {
    tsx = await import("tsx/esm/api")
  } catch {
    console.error("fleetvisor: dist/ is missing; run `npm run build` first")
    process.exit(1)
  }
  tsx.register()
  return import("../src/cli/main.ts")
}
const { main } = await load()
process.exit(await main(process.argv.slice(2)))
