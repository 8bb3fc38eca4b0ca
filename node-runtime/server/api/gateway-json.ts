/**
 * The JSON form of etcd's protobuf messages, as etcd 3.4's grpc-gateway writes and reads it
 * (golang/protobuf jsonpb with OrigName): field names exactly as in the .proto, 64-bit integers
 * as decimal strings, bytes as standard base64, enums by name, and fields that hold their
 * default value left out (empty messages stay, as `{}`). Requests may also use lowerCamelCase
 * names, numbers for 64-bit integers and enum numbers; unknown fields are ignored.
 *
 * Requests leave here in exactly the shape grpc-js hands our handlers (they pass through the
 * same proto-loader deserializer), and responses go through the same serializer as on gRPC, so
 * the gateway and gRPC cannot drift apart.
 */
import type * as grpc from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import * as protobuf from "protobufjs";
import { etcdProtoRoot, loadEtcdGrpc } from "../proto";
import { PreEncoded } from "./pre-encoded";

/** A request body that is not a valid JSON form of the message (gRPC InvalidArgument). */
export class JsonInputError extends Error {}

/** A JSON value as JSON.parse returns it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A JSON number too long for a double to hold exactly (16 digits or more), kept as its text. */
export class JsonNumberText {
  constructor(readonly text: string) {}
}

/** A request body as parseJsonExact returns it: long integers keep every digit. */
export type JsonInput = null | boolean | number | string | JsonNumberText | JsonInput[] | { [key: string]: JsonInput };

/** Stands in for a long number while JSON.parse runs; random, so no request string can forge it. */
const NUMBER_MARK = `\u0000raftkv-number-${randomUUID()}:`;

/**
 * JSON.parse, except that integers of 16 digits or more (beyond 2^53 a double rounds them) come
 * back as JsonNumberText with their exact digits, as Go's decoder reads int64 fields. `text` must
 * already be valid JSON (the caller parsed it once, for the error messages).
 */
export function parseJsonExact(text: string, parsed: Json): JsonInput {
  if (!/\d{16}/.test(text)) return parsed;
  let out = "";
  let last = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      continue;
    }
    if (c === "-" || (c >= "0" && c <= "9")) {
      let j = i + 1;
      while (j < text.length && /[0-9.eE+-]/.test(text[j]!)) j++;
      const token = text.slice(i, j);
      if (/^-?\d{16,}$/.test(token)) {
        out += text.slice(last, i) + JSON.stringify(NUMBER_MARK + token);
        last = j;
      }
      i = j - 1;
    }
  }
  return JSON.parse(out + text.slice(last), (_k, v: unknown) =>
    typeof v === "string" && v.startsWith(NUMBER_MARK) ? new JsonNumberText(v.slice(NUMBER_MARK.length)) : v,
  ) as JsonInput;
}

export interface JsonMethod {
  /** A parsed JSON request body → the request object the gRPC handler receives. */
  decodeRequest(body: JsonInput | undefined): unknown;
  /** A handler's response object → its JSON form. */
  encodeResponse(res: unknown): Json;
}

function loadRoot(): protobuf.Root {
  return etcdProtoRoot();
}

const INT64 = new Set(["int64", "uint64", "sint64", "fixed64", "sfixed64"]);
const INT32 = new Set(["int32", "uint32", "sint32", "fixed32", "sfixed32"]);

function lowerCamel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/** A JSON value's kind in the words of Go's encoding/json errors. */
function kindOf(v: JsonInput): string {
  if (v === null) return "null";
  if (v instanceof JsonNumberText) return "number";
  if (Array.isArray(v)) return "array";
  if (typeof v === "boolean") return "bool";
  return typeof v;
}

const STD_B64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Strict standard base64, as Go's encoding/json decodes []byte (the URL-safe alphabet is refused). */
function decodeBase64(s: string): Buffer {
  if (STD_B64.test(s) && s.length % 4 === 0) return Buffer.from(s, "base64");
  const bad = [...s].findIndex((c) => !/[A-Za-z0-9+/=]/.test(c));
  const at = bad >= 0 ? bad : s.length - (s.length % 4);
  throw new JsonInputError(`illegal base64 data at input byte ${at}`);
}

/** An integer field's value as decimal text, or the error Go's decoder gives for it. */
function integerText(t: string, v: JsonInput): string {
  const goType = t.replace(/^s?fixed/, (m) => (m.startsWith("s") ? "int" : "uint")).replace(/^sint/, "int");
  if (v instanceof JsonNumberText) {
    const bits = goType.endsWith("64") ? 64n : 32n;
    const n = BigInt(v.text);
    const [min, max] = goType.startsWith("uint") ? [0n, 2n ** bits - 1n] : [-(2n ** (bits - 1n)), 2n ** (bits - 1n) - 1n];
    if (n < min || n > max) throw new JsonInputError(`json: cannot unmarshal number ${v.text} into Go value of type ${goType}`);
    return n.toString();
  }
  if (typeof v === "number") {
    if (!Number.isInteger(v)) throw new JsonInputError(`json: cannot unmarshal number ${String(v)} into Go value of type ${goType}`);
    return BigInt(v).toString();
  }
  if (typeof v !== "string") throw new JsonInputError(`json: cannot unmarshal ${kindOf(v)} into Go value of type ${goType}`);
  // A quoted integer is unquoted and read as a JSON number.
  if (v === "") throw new JsonInputError("unexpected end of JSON input");
  const m = /^-?\d+/.exec(v);
  if (!m) throw new JsonInputError(`invalid character '${v[0]!}' looking for beginning of value`);
  if (m[0].length < v.length) throw new JsonInputError(`invalid character '${v[m[0].length]!}' after top-level value`);
  if (goType.startsWith("uint") && v.startsWith("-")) throw new JsonInputError(`json: cannot unmarshal number ${v} into Go value of type ${goType}`);
  return v;
}

/** How Go names a generated type in messages: package, then nested names joined by "_". */
function goTypeName(t: protobuf.Enum | protobuf.Type): string {
  let name = t.name;
  let p = t.parent;
  while (p instanceof protobuf.Type) {
    name = `${p.name}_${name}`;
    p = p.parent;
  }
  const pkg = p ? p.fullName.replace(/^\./, "") : "";
  return pkg ? `${pkg}.${name}` : name;
}

function scalarFromJson(field: protobuf.Field, v: JsonInput): unknown {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Type) return messageFromJson(rt, v);
  if (rt instanceof protobuf.Enum) {
    if (typeof v === "string") {
      if (!(v in rt.values)) throw new JsonInputError(`unknown value ${JSON.stringify(v)} for enum ${goTypeName(rt)}`);
      return v;
    }
    if (typeof v === "number" && Number.isInteger(v)) return v;
    throw new JsonInputError(`invalid value for enum field ${field.name}: ${JSON.stringify(v)}`);
  }
  const t = field.type;
  if (t === "bytes") {
    if (typeof v !== "string") throw new JsonInputError(`json: cannot unmarshal ${kindOf(v)} into Go value of type []uint8`);
    return decodeBase64(v);
  }
  if (t === "string") {
    if (typeof v !== "string") throw new JsonInputError(`json: cannot unmarshal ${kindOf(v)} into Go value of type string`);
    return v;
  }
  if (t === "bool") {
    if (typeof v !== "boolean") throw new JsonInputError(`json: cannot unmarshal ${kindOf(v)} into Go value of type bool`);
    return v;
  }
  if (INT64.has(t) || INT32.has(t)) {
    const text = integerText(t, v);
    return INT64.has(t) ? text : Number(text);
  }
  if (t === "double" || t === "float") {
    const n = typeof v === "number" ? v : typeof v === "string" ? Number(v) : v instanceof JsonNumberText ? Number(v.text) : NaN;
    if (Number.isNaN(n)) throw new JsonInputError(`invalid value for ${t} field ${field.name}: ${JSON.stringify(v)}`);
    return n;
  }
  throw new JsonInputError(`unsupported field type ${t}`);
}

/** JSON → a plain object for protobufjs' fromObject (bytes as Buffers, longs as strings). */
function messageFromJson(type: protobuf.Type, v: JsonInput | undefined): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v) || v instanceof JsonNumberText) {
    throw new JsonInputError(`json: cannot unmarshal ${kindOf(v)} into Go value of type map[string]json.RawMessage`);
  }
  const byJsonName = new Map(type.fieldsArray.map((f) => [lowerCamel(f.name), f]));
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(v)) {
    const field = type.fields[key] ?? byJsonName.get(key);
    if (!field || value === null) continue;
    if (field.repeated) {
      if (!Array.isArray(value)) throw new JsonInputError(`json: cannot unmarshal ${kindOf(value)} into Go value of type []json.RawMessage`);
      out[field.name] = value.map((x) => scalarFromJson(field, x));
    } else {
      out[field.name] = scalarFromJson(field, value);
    }
  }
  return out;
}

function isDefault(field: protobuf.Field, v: unknown): boolean {
  if (field.resolvedType instanceof protobuf.Enum) return v === field.resolvedType.valuesById[0];
  return v === "" || v === false || v === 0 || v === "0";
}

/** protobufjs' toObject output (longs, bytes and enums as strings) → jsonpb's JSON. */
function messageToJson(type: protobuf.Type, obj: Record<string, unknown>): { [key: string]: Json } {
  const out: { [key: string]: Json } = {};
  for (const field of type.fieldsArray) {
    const v = obj[field.name];
    if (v === undefined || v === null) continue;
    const rt = field.resolvedType;
    const one = (x: unknown): Json => (rt instanceof protobuf.Type ? messageToJson(rt, x as Record<string, unknown>) : (x as Json));
    if (field.repeated) {
      const arr = (v as unknown[]).map(one);
      if (arr.length > 0) out[field.name] = arr;
    } else if (rt instanceof protobuf.Type) {
      out[field.name] = one(v);
    } else if (field.partOf !== null || !isDefault(field, v)) {
      // A member of a oneof is sent even when it holds its default value, so it is shown.
      out[field.name] = one(v);
    }
  }
  return out;
}

const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: String, bytes: String };

/** The JSON codec of one RPC, e.g. jsonMethod("etcdserverpb.KV", "Range"). */
export function jsonMethod(service: string, method: string): JsonMethod {
  const svc = loadRoot().lookupService(service);
  const m = svc.methods[method];
  if (!m) throw new Error(`no method ${service}/${method}`);
  const reqType = m.resolvedRequestType!;
  const resType = m.resolvedResponseType!;
  const def = (loadEtcdGrpc().packageDefinition[service] as grpc.ServiceDefinition | undefined)?.[method];
  if (!def) throw new Error(`no gRPC definition for ${service}/${method}`);
  return {
    decodeRequest(body) {
      const msg = reqType.fromObject(messageFromJson(reqType, body));
      return def.requestDeserialize(Buffer.from(reqType.encode(msg).finish()));
    },
    encodeResponse(res) {
      const decoded = resType.decode(res instanceof PreEncoded ? res.bytes : def.responseSerialize(res));
      return messageToJson(resType, resType.toObject(decoded, TO_OBJECT));
    },
  };
}
