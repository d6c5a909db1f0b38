/**
 * The ingest thread's entry (see IngestThread.ts). Plain JavaScript that registers tsx's loader
 * in this thread, then loads the thread's body: the checks it runs (topic, schemas) are the
 * TypeScript modules the main thread uses, whether the process runs under tsx, node or vitest.
 */
import { register } from "tsx/esm/api"

register()
await import("./ingestWorkerBody.ts")
