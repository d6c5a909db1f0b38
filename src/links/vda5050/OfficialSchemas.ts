/**
 * The official VDA 5050 JSON Schemas (draft 2020-12), loaded from a folder the operator
 * configures (`FLEET_VDA5050_SCHEMAS`) and compiled once with ajv, `date-time` formats checked.
 * They are the VDA's files and are not shipped here: an integrator takes the `json_schemas`
 * folder of the protocol version they run from github.com/VDA5050/VDA5050 (one branch or tag
 * per version).
 *
 * The folder holds one subfolder per version, named after it (`schemas-2.0.0/`,
 * `schemas-2.1.0/`), or is itself one version's files (its version then read from its name,
 * e.g. `…/2.1.0`; a name without one, such as `json_schemas`, serves every version). Each
 * version has a file per topic, `<topic>.schema` or `<topic>.json`; other files are ignored.
 *
 * A message is checked against the schemas of its header's `version` (major.minor: `2.1.3`
 * with 2.1.0's); a message without one (every field of a `visualization` is optional) against
 * the newest loaded. Plain functions, synchronous: the ingest thread loads the folder again
 * from its path.
 *
 * @since 0.1.0
 */
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js"
import * as AjvFormats from "ajv-formats"
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as fs from "node:fs"
import * as path from "node:path"
import { TopicName } from "./Topic.js"

/** Says why `value`, a parsed payload received on `topic`, breaks its official schema; `undefined` when it does not. */
export type Validate = (topic: TopicName, value: unknown) => string | undefined

/** The schemas of a folder, compiled. */
export interface OfficialSchemas {
  /** The folder they were loaded from, as given. */
  readonly folder: string
  /** The versions loaded, oldest first (`2.0.0`, `2.1.0`), or the one folder's name when it names no version. */
  readonly versions: ReadonlyArray<string>
  readonly validate: Validate
}

/** A folder that could not be loaded: missing, empty, or holding a file that is not a usable schema. */
export class OfficialSchemasInvalid extends Data.TaggedError("OfficialSchemasInvalid")<{
  /** The folder or file at fault. */
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return `VDA 5050 schemas (FLEET_VDA5050_SCHEMAS): ${this.path}: ${this.reason}`
  }
}

const topics = TopicName.literals

/** One version's compiled schemas. */
interface VersionSet {
  readonly label: string
  /** `[major, minor, patch]`; undefined for a folder that names no version. */
  readonly number: readonly [number, number, number] | undefined
  readonly validators: { readonly [K in TopicName]: ValidateFunction }
}

const folderVersion = /(\d+)\.(\d+)\.(\d+)$/

const versionOf = (name: string): readonly [number, number, number] | undefined => {
  const match = folderVersion.exec(name)
  return match === null ? undefined : [Number(match[1]), Number(match[2]), Number(match[3])]
}

// ajv-formats is CommonJS: under Node's interop `default` is its `module.exports`, the plugin, whose `default` is itself.
const addFormats = AjvFormats.default.default

class LoadFailure extends Error {
  constructor(readonly path: string, readonly reason: string) {
    super(reason)
  }
}

const describe = (error: unknown): string =>
  (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error))

const isFolder = (dir: string): boolean => fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory() === true

/** Compiles the topic files of `dir`; one Ajv each, so that two versions' schemas never share ids. */
const readSet = (dir: string, name: string): VersionSet => {
  const files = new Set(fs.readdirSync(dir))
  const found = topics.map((topic) => [topic, [`${topic}.schema`, `${topic}.json`].find((file) => files.has(file))] as const)
  const missing = found.filter(([, file]) => file === undefined).map(([topic]) => `${topic}.schema`)
  if (missing.length === topics.length) throw new LoadFailure(dir, "no schema files (<topic>.schema or <topic>.json)")
  if (missing.length > 0) throw new LoadFailure(dir, `missing ${missing.join(", ")}`)
  const ajv = new Ajv2020({ strict: false, allErrors: false })
  addFormats(ajv)
  const validators = {} as Record<TopicName, ValidateFunction>
  for (const [topic, fileName] of found) {
    const file = path.join(dir, fileName!)
    let schema: unknown
    try {
      schema = JSON.parse(fs.readFileSync(file, "utf8"))
    } catch (error) {
      throw new LoadFailure(file, error instanceof SyntaxError ? `not JSON (${error.message})` : describe(error))
    }
    try {
      validators[topic] = ajv.compile(schema as object)
    } catch (error) {
      throw new LoadFailure(file, `not a usable JSON Schema (${describe(error)})`)
    }
  }
  const number = versionOf(name)
  return { label: number?.join(".") ?? name, number, validators }
}

const readFolder = (folder: string): ReadonlyArray<VersionSet> => {
  if (fs.statSync(folder, { throwIfNoEntry: false }) === undefined) throw new LoadFailure(folder, "no such folder")
  if (!isFolder(folder)) throw new LoadFailure(folder, "not a folder")
  const versioned = fs.readdirSync(folder)
    .filter((name) => versionOf(name) !== undefined && isFolder(path.join(folder, name)))
  if (versioned.length === 0) return [readSet(folder, path.basename(path.resolve(folder)))]
  return versioned
    .map((name) => readSet(path.join(folder, name), name))
    .sort((a, b) => a.number![0] - b.number![0] || a.number![1] - b.number![1] || a.number![2] - b.number![2])
}

const payloadVersion = /^(\d+)\.(\d+)(?:[.-]|$)/

/** Versions remembered per distinct `version` string; a flood of made-up ones clears it. */
const maxCachedVersions = 1_000

/** Longer `version` strings are looked at each time, not remembered: 1,000 of 60 KB would hold 60 MB. */
const maxCachedVersionLength = 32

const validatorOver = (sets: ReadonlyArray<VersionSet>): Validate => {
  const newest = sets[sets.length - 1]
  const byMinor = new Map<string, VersionSet>()
  // A later patch of the same minor version wins.
  for (const set of sets) if (set.number !== undefined) byMinor.set(`${set.number[0]}.${set.number[1]}`, set)
  const loaded = sets.map((set) => set.label).join(", ")
  const chosen = new Map<string, VersionSet | string>()
  const choose = (version: string): VersionSet | string => {
    if (byMinor.size === 0) return newest
    const match = payloadVersion.exec(version)
    if (match === null) return `version "${version.slice(0, 40)}" is not [Major].[Minor].[Patch]`
    return byMinor.get(`${match[1]}.${match[2]}`) ?? `no schema for version ${version.slice(0, 40)} (loaded: ${loaded})`
  }
  return (topic, value) => {
    const version = typeof value === "object" && value !== null ? (value as { readonly version?: unknown }).version : undefined
    let set: VersionSet | string
    if (typeof version !== "string") set = newest
    else {
      const known = chosen.get(version)
      if (known !== undefined) set = known
      else {
        if (chosen.size >= maxCachedVersions) chosen.clear()
        set = choose(version)
        if (version.length <= maxCachedVersionLength) chosen.set(version, set)
      }
    }
    if (typeof set === "string") return set
    const validate = set.validators[topic]
    if (validate(value)) return undefined
    const error = validate.errors?.[0]
    return `${topic} ${set.label}: ${error === undefined ? "invalid" : `${error.instancePath || "(root)"} ${error.message ?? error.keyword}`}`
  }
}

/** Loads and compiles the schemas of `folder`; a folder that cannot serve as one is an {@link OfficialSchemasInvalid}. */
export const load = (folder: string): Either.Either<OfficialSchemas, OfficialSchemasInvalid> => {
  try {
    const sets = readFolder(folder)
    return Either.right({ folder, versions: sets.map((set) => set.label), validate: validatorOver(sets) })
  } catch (error) {
    return Either.left(
      error instanceof LoadFailure
        ? new OfficialSchemasInvalid({ path: error.path, reason: error.reason })
        : new OfficialSchemasInvalid({ path: folder, reason: describe(error) })
    )
  }
}
