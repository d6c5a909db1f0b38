/**
 * The official VDA 5050 JSON schemas (shared/fixtures/vda5050), and two small checks against
 * them that need no JSON-schema library: `violations` validates a JSON value against the subset
 * of JSON Schema the VDA 5050 files use, and `drift` compares one of our Effect schemas with an
 * official schema (required fields, field names, enums), so our model cannot silently drift.
 */
import * as SchemaAST from "effect/SchemaAST"
import { existsSync, readFileSync, readdirSync } from "node:fs"
import { fileURLToPath } from "node:url"
import type { TopicName } from "../../../../src/links/vda5050/Topic.js"

/**
 * The folder with the schemas and example messages: the project's `shared/` beside the checkout
 * (or wherever `FLEETVISOR_SHARED` points). They are the VDA's files, so they are not copied in.
 */
export const fixturesDir = ((): string => {
  const candidates = [
    process.env.FLEETVISOR_SHARED,
    fileURLToPath(new URL("../../../../../shared/", import.meta.url)),
    "/work/shared/"
  ].filter((dir): dir is string => dir !== undefined && dir !== "")
  const found = candidates.map((dir) => `${dir.replace(/\/$/, "")}/fixtures/vda5050/`).find((dir) => existsSync(dir))
  if (found === undefined) {
    throw new Error(`VDA 5050 fixtures not found in ${candidates.join(", ")}; set FLEETVISOR_SHARED to the shared/ folder`)
  }
  return found
})()

/** The two schema versions we hold. */
export const versions = ["2.0.0", "2.1.0"] as const

/** A JSON Schema node, as far as the VDA 5050 files use it. */
export interface JsonSchema {
  readonly type?: string | ReadonlyArray<string>
  readonly required?: ReadonlyArray<string>
  readonly properties?: Record<string, JsonSchema>
  readonly items?: JsonSchema
  readonly enum?: ReadonlyArray<unknown>
  readonly minimum?: number
  readonly maximum?: number
  readonly $ref?: string
  readonly definitions?: Record<string, JsonSchema>
}

/** The official schema of `topic` in `version`. */
export const officialSchema = (version: (typeof versions)[number], topic: TopicName): JsonSchema =>
  JSON.parse(readFileSync(`${fixturesDir}schemas-${version}/${topic}.schema`, "utf8"))

/** The example messages beside the schemas, with the topic their file name starts with. */
export const examples = (): ReadonlyArray<{ readonly file: string; readonly topic: TopicName; readonly json: string }> =>
  readdirSync(fixturesDir)
    .filter((file) => file.endsWith(".example.json"))
    .map((file) => ({
      file,
      topic: file.split(".")[0] as TopicName,
      json: readFileSync(`${fixturesDir}${file}`, "utf8")
    }))

const resolve = (node: JsonSchema, root: JsonSchema): JsonSchema =>
  node.$ref === undefined ? node : root.definitions![node.$ref.replace("#/definitions/", "")]

const typeOf = (value: unknown): ReadonlyArray<string> =>
  value === null
    ? ["null"]
    : Array.isArray(value)
      ? ["array"]
      : typeof value === "number"
        ? Number.isInteger(value) ? ["number", "integer"] : ["number"]
        : [typeof value]

/** Where `value` breaks `schema`: wrong types, missing required fields, values outside an enum or a range. */
export const violations = (schema: JsonSchema, value: unknown, root: JsonSchema = schema, path = "$"): Array<string> => {
  const node = resolve(schema, root)
  const types = node.type === undefined ? undefined : typeof node.type === "string" ? [node.type] : node.type
  if (types && !typeOf(value).some((t) => types.includes(t))) return [`${path}: expected ${types.join("|")}`]
  const out: Array<string> = []
  if (node.enum && !node.enum.includes(value)) out.push(`${path}: ${JSON.stringify(value)} is not one of ${node.enum.join(", ")}`)
  if (typeof value === "number" && node.minimum !== undefined && value < node.minimum) out.push(`${path}: below ${node.minimum}`)
  if (typeof value === "number" && node.maximum !== undefined && value > node.maximum) out.push(`${path}: above ${node.maximum}`)
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const record = value as Record<string, unknown>
    for (const key of node.required ?? []) if (!(key in record)) out.push(`${path}.${key}: required`)
    for (const [key, sub] of Object.entries(node.properties ?? {})) {
      if (key in record) out.push(...violations(sub, record[key], root, `${path}.${key}`))
    }
  }
  if (Array.isArray(value) && node.items) value.forEach((item, i) => out.push(...violations(node.items!, item, root, `${path}[${i}]`)))
  return out
}

/** The AST under `Schema.optional`, `Schema.suspend` and refinements. */
const unwrap = (ast: SchemaAST.AST): SchemaAST.AST => {
  if (ast._tag === "Suspend") return unwrap(ast.f())
  if (ast._tag === "Refinement") return unwrap(ast.from)
  if (ast._tag === "Union") {
    const defined = ast.types.filter((t) => t._tag !== "UndefinedKeyword")
    if (defined.length === 1) return unwrap(defined[0])
  }
  return ast
}

const literals = (ast: SchemaAST.AST): ReadonlyArray<unknown> | undefined =>
  ast._tag === "Literal"
    ? [ast.literal]
    : ast._tag === "Union" && ast.types.every((t) => t._tag === "Literal")
      ? ast.types.map((t) => (t as SchemaAST.Literal).literal)
      : undefined

/**
 * How our schema (its encoded side, i.e. the JSON shape) differs from the official one: a field
 * the official schema requires that we lack or make optional, a field we model that it does not
 * define, or an enum with other values. Objects we keep loose (records) are not looked into.
 */
export const drift = (official: JsonSchema, ours: SchemaAST.AST, root: JsonSchema = official, path = "$"): Array<string> => {
  const node = resolve(official, root)
  const ast = unwrap(ours)
  const out: Array<string> = []
  if (node.enum) {
    const values = literals(ast)
    if (values && [...values].sort().join() !== [...node.enum].sort().join()) {
      out.push(`${path}: our values ${values.join(", ")} differ from ${node.enum.join(", ")}`)
    }
  }
  if (ast._tag === "TypeLiteral" && ast.propertySignatures.length > 0) {
    const fields = new Map(ast.propertySignatures.map((p) => [String(p.name), p]))
    for (const key of node.required ?? []) {
      const field = fields.get(key)
      if (field === undefined) out.push(`${path}.${key}: required but missing from our schema`)
      else if (field.isOptional) out.push(`${path}.${key}: required but optional in our schema`)
    }
    for (const [key, field] of fields) {
      const sub = node.properties?.[key]
      if (sub === undefined) out.push(`${path}.${key}: not defined by the official schema`)
      else out.push(...drift(sub, field.type, root, `${path}.${key}`))
    }
  }
  if (ast._tag === "TupleType" && node.items && ast.rest.length === 1) {
    out.push(...drift(node.items, ast.rest[0].type, root, `${path}[]`))
  }
  return out
}

/** The top-level fields the official schema requires that our schema lacks or makes optional. */
export const missingRequired = (official: JsonSchema, ours: SchemaAST.AST): Array<string> => {
  const fields = new Map(SchemaAST.getPropertySignatures(ours).map((p) => [String(p.name), p]))
  return (official.required ?? []).filter((key) => fields.get(key)?.isOptional !== false)
}
