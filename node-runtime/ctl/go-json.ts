/**
 * JSON exactly as etcdctl's `-w json` prints a protobuf response: Go's encoding/json over
 * gogoproto structs. That means fields in .proto order under their .proto names, zero values
 * left out (omitempty), 64-bit integers as bare decimal numbers (never rounded through a JS
 * number), bytes as base64, enums as numbers, and a oneof as {"<GoOneofName>":{"<GoFieldName>":...}} (gogoproto's wrapper
 * structs carry no json tags).
 * The field metadata comes from the loaded descriptors, so it cannot drift from the .proto.
 */
import { loadEtcdGrpc } from "../server/proto";

interface FieldDescriptor {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName: string;
  oneofIndex?: number;
}

interface MessageDescriptor {
  field: FieldDescriptor[];
  oneofDecl?: Array<{ name: string }>;
  enumType?: Array<{ name: string; value: Array<{ name: string; number: number }> }>;
}

function descriptor(fullName: string): MessageDescriptor {
  const def = loadEtcdGrpc().packageDefinition[fullName] as { type?: MessageDescriptor } | undefined;
  if (!def?.type) throw new Error(`no message type ${fullName}`);
  return def.type;
}

/** A field's type name is relative: nested in the message itself first, then its package. */
function resolveTypeName(message: string, typeName: string): string {
  const name = typeName.replace(/^\./, "");
  const defs = loadEtcdGrpc().packageDefinition;
  if (defs[`${message}.${name}`] || descriptor(message).enumType?.some((e) => e.name === name)) return `${message}.${name}`;
  const pkg = message.slice(0, message.indexOf("."));
  if (defs[`${pkg}.${name}`]) return `${pkg}.${name}`;
  return name;
}

const ENUM_NUMBERS: Record<string, Record<string, number>> = {};

function enumNumber(fullEnum: string, value: unknown): number {
  if (typeof value === "number") return value;
  let table = ENUM_NUMBERS[fullEnum];
  if (!table) {
    // Top-level enums have their own entry; nested ones live in their message's enumType.
    const def = loadEtcdGrpc().packageDefinition[fullEnum] as { type?: { value?: Array<{ name: string; number: number }> } } | undefined;
    const dot = fullEnum.lastIndexOf(".");
    const values = def?.type?.value ?? descriptor(fullEnum.slice(0, dot)).enumType?.find((e) => e.name === fullEnum.slice(dot + 1))?.value ?? [];
    table = {};
    for (const v of values) table[v.name] = v.number;
    ENUM_NUMBERS[fullEnum] = table;
  }
  return table[String(value)] ?? 0;
}

function isZero(v: unknown): boolean {
  if (v === null || v === undefined) return true;
  if (typeof v === "string") return v === "" || v === "0";
  if (typeof v === "number") return v === 0;
  if (typeof v === "boolean") return !v;
  if (Buffer.isBuffer(v)) return v.length === 0;
  if (Array.isArray(v)) return v.length === 0;
  return false;
}

function scalar(field: FieldDescriptor, scope: string, v: unknown): string {
  switch (field.type) {
    case "TYPE_INT64":
    case "TYPE_UINT64":
    case "TYPE_INT32":
    case "TYPE_UINT32":
    case "TYPE_SINT64":
    case "TYPE_FIXED64":
      return String(v);
    case "TYPE_BOOL":
      return v ? "true" : "false";
    case "TYPE_STRING":
      return JSON.stringify(String(v));
    case "TYPE_BYTES":
      return JSON.stringify((v as Buffer).toString("base64"));
    case "TYPE_ENUM":
      return String(enumNumber(resolveTypeName(scope, field.typeName), v));
    case "TYPE_MESSAGE":
      return goJson(resolveTypeName(scope, field.typeName), v as Record<string, unknown>);
    default:
      throw new Error(`unsupported field type ${field.type}`);
  }
}

function goFieldName(protoName: string): string {
  return protoName
    .split("_")
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
    .join("");
}

/** Go's JSON members of a message, without braces (for embedding). */
export function goJsonMembers(fullName: string, msg: Record<string, unknown>): string[] {
  const desc = descriptor(fullName);
  const scope = fullName;
  const oneofs = desc.oneofDecl ?? [];
  const members: string[] = [];
  const doneOneofs = new Set<string>();
  for (const f of desc.field) {
    const oneof = oneofs.length > 0 && f.oneofIndex !== undefined ? oneofs[f.oneofIndex] : undefined;
    if (oneof && typeof msg[oneof.name] === "string") {
      if (doneOneofs.has(oneof.name)) continue;
      doneOneofs.add(oneof.name);
      const chosen = desc.field.find((x) => x.name === msg[oneof.name]);
      if (!chosen) continue;
      const inner = `{${JSON.stringify(goFieldName(chosen.name))}:${scalar(chosen, scope, msg[chosen.name])}}`;
      members.push(`${JSON.stringify(goFieldName(oneof.name))}:${inner}`);
      continue;
    }
    const raw = msg[f.name];
    const v = f.type === "TYPE_ENUM" && f.label !== "LABEL_REPEATED" ? enumNumber(resolveTypeName(fullName, f.typeName), raw) : raw;
    if (isZero(v)) continue;
    const val = f.label === "LABEL_REPEATED" ? `[${(v as unknown[]).map((x) => scalar(f, scope, x)).join(",")}]` : scalar(f, scope, v);
    members.push(`${JSON.stringify(f.name)}:${val}`);
  }
  return members;
}

/** One message as etcdctl's JSON printer writes it. */
export function goJson(fullName: string, msg: Record<string, unknown> | object): string {
  return `{${goJsonMembers(fullName, msg as Record<string, unknown>).join(",")}}`;
}

/** A Go struct of already-encoded JSON values, in the given order (etcdctl's wrapper types). */
export function goStruct(members: ReadonlyArray<readonly [string, string]>): string {
  return `{${members.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(",")}}`;
}
