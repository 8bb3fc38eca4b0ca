/**
 * etcd's HTTP/JSON gateway (`POST /v3/kv/put` and friends), served on the client port next to
 * gRPC as etcd 3.4 serves it. Every route runs the very function its gRPC method runs; only
 * the framing differs: one JSON object in and out for unary calls, and for the two
 * bidirectional streams (watch, lease keep-alive) a body of JSON objects in and
 * newline-delimited `{"result": ...}` objects out. Errors carry etcd's message and gRPC code,
 * with the HTTP status grpc-gateway (v1.9, as vendored by etcd 3.4) maps that code to.
 */
import { status as Status } from "@grpc/grpc-js";
import type * as grpc from "@grpc/grpc-js";
import { EventEmitter } from "node:events";
import * as http from "node:http";
import type * as net from "node:net";
import { Errors } from "../errors";
import { checkEtcdHealth } from "../http";
import type { Member } from "../member";
import { JsonInputError, jsonMethod, parseJsonExact, type Json, type JsonInput, type JsonMethod } from "./gateway-json";
import { ETCD_API_VERSION, keepAliveCheck, serveLeaseKeepAlive, unaryFunction, watchCheck, type UnaryFunction } from "./services";
import { httpCaller, type AuthGate, type Caller } from "./auth";
import type { MessageStream } from "./stream";
import { serveWatch } from "./watch";

/** The service implementations registered with the gRPC server; the gateway calls the same ones. */
export interface GatewayServices {
  KV: grpc.UntypedServiceImplementation;
  Lease: grpc.UntypedServiceImplementation;
  Cluster: grpc.UntypedServiceImplementation;
  Maintenance: grpc.UntypedServiceImplementation;
  Auth?: grpc.UntypedServiceImplementation;
}

export interface GatewayOptions {
  /** Largest JSON value accepted in a request body (base64 makes bodies ~4/3 of the message). */
  maxBodyBytes: number;
  /** Identities for the streams (watch, keep-alive); unary calls get the caller from the request. */
  auth?: AuthGate;
  /** The first request's headers must arrive within this of the connection (default HEADERS_TIMEOUT_MS). */
  headerTimeoutMs?: number;
  /** A unary body may pause at most this long between chunks (default BODY_TIMEOUT_MS). */
  bodyTimeoutMs?: number;
}

const UNARY_ROUTES: Record<string, [keyof GatewayServices, string]> = {
  "/v3/kv/range": ["KV", "Range"],
  "/v3/kv/put": ["KV", "Put"],
  "/v3/kv/deleterange": ["KV", "DeleteRange"],
  "/v3/kv/txn": ["KV", "Txn"],
  "/v3/kv/compaction": ["KV", "Compact"],
  "/v3/lease/grant": ["Lease", "LeaseGrant"],
  "/v3/lease/revoke": ["Lease", "LeaseRevoke"],
  "/v3/kv/lease/revoke": ["Lease", "LeaseRevoke"],
  "/v3/lease/timetolive": ["Lease", "LeaseTimeToLive"],
  "/v3/kv/lease/timetolive": ["Lease", "LeaseTimeToLive"],
  "/v3/lease/leases": ["Lease", "LeaseLeases"],
  "/v3/kv/lease/leases": ["Lease", "LeaseLeases"],
  "/v3/cluster/member/add": ["Cluster", "MemberAdd"],
  "/v3/cluster/member/remove": ["Cluster", "MemberRemove"],
  "/v3/cluster/member/update": ["Cluster", "MemberUpdate"],
  "/v3/cluster/member/list": ["Cluster", "MemberList"],
  "/v3/cluster/member/promote": ["Cluster", "MemberPromote"],
  "/v3/maintenance/alarm": ["Maintenance", "Alarm"],
  "/v3/maintenance/status": ["Maintenance", "Status"],
  "/v3/maintenance/defragment": ["Maintenance", "Defragment"],
  "/v3/maintenance/hash": ["Maintenance", "Hash"],
  "/v3/maintenance/transfer-leadership": ["Maintenance", "MoveLeader"],
  "/v3/auth/enable": ["Auth", "AuthEnable"],
  "/v3/auth/disable": ["Auth", "AuthDisable"],
  "/v3/auth/authenticate": ["Auth", "Authenticate"],
  "/v3/auth/user/add": ["Auth", "UserAdd"],
  "/v3/auth/user/get": ["Auth", "UserGet"],
  "/v3/auth/user/list": ["Auth", "UserList"],
  "/v3/auth/user/delete": ["Auth", "UserDelete"],
  "/v3/auth/user/changepw": ["Auth", "UserChangePassword"],
  "/v3/auth/user/grant": ["Auth", "UserGrantRole"],
  "/v3/auth/user/revoke": ["Auth", "UserRevokeRole"],
  "/v3/auth/role/add": ["Auth", "RoleAdd"],
  "/v3/auth/role/get": ["Auth", "RoleGet"],
  "/v3/auth/role/list": ["Auth", "RoleList"],
  "/v3/auth/role/delete": ["Auth", "RoleDelete"],
  "/v3/auth/role/grant": ["Auth", "RoleGrantPermission"],
  "/v3/auth/role/revoke": ["Auth", "RoleRevokePermission"],
};

/** grpc-gateway v1.9's HTTPStatusFromCode. */
export function httpStatusFromCode(code: number): number {
  switch (code) {
    case Status.OK:
      return 200;
    case Status.CANCELLED:
      return 408;
    case Status.INVALID_ARGUMENT:
    case Status.OUT_OF_RANGE:
      return 400;
    case Status.DEADLINE_EXCEEDED:
      return 504;
    case Status.NOT_FOUND:
      return 404;
    case Status.ALREADY_EXISTS:
    case Status.ABORTED:
      return 409;
    case Status.PERMISSION_DENIED:
      return 403;
    case Status.UNAUTHENTICATED:
      return 401;
    case Status.RESOURCE_EXHAUSTED:
      return 429;
    case Status.FAILED_PRECONDITION:
      return 412;
    case Status.UNIMPLEMENTED:
      return 501;
    case Status.UNAVAILABLE:
      return 503;
    default:
      return 500;
  }
}

// etcd's gateway answers every request with permissive CORS headers.
const CORS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "POST, GET, OPTIONS, PUT, DELETE",
  "access-control-allow-headers": "accept, content-type, authorization",
};

function sendJson(res: http.ServerResponse, code: number, body: Json): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { ...CORS, "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function sendText(res: http.ServerResponse, code: number, text: string): void {
  res.writeHead(code, { ...CORS, "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff" });
  res.end(text);
}

/** The error body of a failed unary call, as etcd 3.4's gateway writes it. */
function sendError(res: http.ServerResponse, code: number, message: string): void {
  sendJson(res, httpStatusFromCode(code), { error: message, message, code });
}

/** Go's encoding/json refuses values nested deeper than this ("exceeded max depth"). */
export const MAX_JSON_DEPTH = 10000;

/**
 * Splits a stream of text into top-level JSON values (objects, arrays, strings, literals),
 * the way Go's json.Decoder reads one value after another from a request body.
 *
 * Each character is looked at once: whitespace between values is dropped as it is read, and
 * the value in progress is kept as a list of chunk slices joined only when it is complete, so
 * a body of any size costs time linear in its length, spread over its chunks.
 */
export class JsonValueSplitter {
  private parts: string[] = [];
  private partsLength = 0;
  private inValue = false;
  private literal = false;
  private depth = 0;
  private inString = false;
  private escaped = false;

  /** Adds text; returns the values completed by it, as text. */
  push(text: string): string[] {
    const out: string[] = [];
    let from = 0;
    const complete = (end: number) => {
      this.parts.push(text.slice(from, end));
      out.push(this.parts.length === 1 ? this.parts[0]! : this.parts.join(""));
      this.reset();
    };
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (!this.inValue) {
        if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
        this.inValue = true;
        from = i;
        if (c === 0x7b || c === 0x5b) this.depth = 1;
        else if (c === 0x22) this.inString = true;
        else this.literal = true;
        continue;
      }
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === 0x5c) this.escaped = true;
        else if (c === 0x22) {
          this.inString = false;
          if (this.depth === 0) complete(i + 1);
        }
        continue;
      }
      if (this.literal) {
        // A bare literal (number, true, null...) ends at whitespace or at the next value.
        if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09 || c === 0x7b || c === 0x5b || c === 0x22) {
          complete(i);
          i--;
        }
        continue;
      }
      if (c === 0x22) this.inString = true;
      else if (c === 0x7b || c === 0x5b) {
        if (++this.depth > MAX_JSON_DEPTH) throw new JsonInputError(`invalid character '${text[i]!}' exceeded max depth`);
      } else if (c === 0x7d || c === 0x5d) {
        if (--this.depth === 0) complete(i + 1);
      }
    }
    if (this.inValue) {
      const piece = text.slice(from);
      this.parts.push(piece);
      this.partsLength += piece.length;
    }
    return out;
  }

  /** Characters of the value being read so far (to bound memory). */
  get pendingLength(): number {
    return this.partsLength;
  }

  /**
   * At the end of the body: the last value if it was a bare literal, undefined if nothing is
   * left; throws "unexpected EOF" (Go's words) when the body stops inside a value.
   */
  /** Back to "between values": nothing buffered, no open string, literal or nesting. */
  private reset(): void {
    this.parts = [];
    this.partsLength = 0;
    this.inValue = false;
    this.literal = false;
    this.depth = 0;
    this.inString = false;
  }

  finish(): string | undefined {
    const rest = this.inValue ? this.parts.join("").trim() : "";
    const truncated = this.inValue && !this.literal;
    this.reset();
    if (truncated) {
      // A syntax error before the cut is reported as such (Go's decoder stops there first).
      parseJson(rest);
      throw new JsonInputError("unexpected EOF");
    }
    return rest === "" ? undefined : rest;
  }
}

/** V8's JSON syntax errors in the words of Go's encoding/json, which etcd's gateway returns. */
const GO_SYNTAX_ERRORS: Array<[RegExp, string]> = [
  [/^Expected property name or '}'/, "looking for beginning of object key string"],
  [/^Expected ',' or '}' after property value/, "after object key:value pair"],
  [/^Expected ':' after property name/, "after object key"],
  [/^Expected ',' or ']' after array element/, "after array element"],
  [/^Bad control character in string literal/, "in string literal"],
  [/^(Unexpected token|Unexpected non-whitespace character|No number after|Exponent part is missing)/, "looking for beginning of value"],
];

/** Go's quoteChar: 'x', with the quote itself escaped and control characters spelled out. */
function quoteChar(c: string): string {
  if (c === "'") return "'\\''";
  if (c === '"') return "'\"'";
  return `'${JSON.stringify(c).slice(1, -1)}'`;
}

function parseJson(text: string): JsonInput {
  try {
    // Parsed once as is (syntax errors name positions in the client's text), then long integers
    // are kept exact: int64 values beyond 2^53 must not be rounded.
    return parseJsonExact(text, JSON.parse(text) as Json);
  } catch (e) {
    if (e instanceof RangeError) throw new JsonInputError("invalid character '[' exceeded max depth");
    const msg = (e as Error).message;
    const pos = /at position (\d+)/.exec(msg);
    const rule = GO_SYNTAX_ERRORS.find(([re]) => re.test(msg));
    if (pos && Number(pos[1]) >= text.length) throw new JsonInputError("unexpected EOF");
    if (rule && pos) throw new JsonInputError(`invalid character ${quoteChar(text[Number(pos[1])] ?? "")} ${rule[1]}`);
    throw new JsonInputError(/end of (JSON )?input|Unterminated/i.test(msg) ? "unexpected EOF" : msg);
  }
}

class BodyTooLargeError extends Error {}
class BodyTimeoutError extends Error {}

/** The first request's headers must arrive within this time of the connection (default of --gateway-header-timeout). */
export const HEADERS_TIMEOUT_MS = 10_000;
/**
 * A unary request's body may pause at most this long between chunks (slow-body clients hold
 * sockets; default of --gateway-body-timeout) and take at most BODY_MAX_MS in all; a large body that keeps flowing is read.
 */
export const BODY_TIMEOUT_MS = 30_000;
const BODY_MAX_MS = 300_000;
/** Time the rest of a refused body may take to drain before the connection is dropped. */
const DRAIN_TIMEOUT_MS = 10_000;

/**
 * After an early answer (body too large or too slow): read and discard the rest of the body,
 * so the client gets the answer rather than a connection reset, for a bounded time.
 */
function discardRest(req: http.IncomingMessage): void {
  req.removeAllListeners("data");
  if (req.complete) return;
  const timer = setTimeout(() => req.socket.destroy(), DRAIN_TIMEOUT_MS);
  req.once("end", () => clearTimeout(timer));
  req.once("close", () => clearTimeout(timer));
  req.resume();
}

/** Reads a unary request body: its first JSON value (trailing text is ignored, as in etcd). */
function readFirstValue(req: http.IncomingMessage, limit: number, bodyTimeoutMs: number): Promise<JsonInput | undefined> {
  return new Promise((resolve, reject) => {
    const splitter = new JsonValueSplitter();
    let done = false;
    const stalled = () => fail(new BodyTimeoutError(`request body not received within ${bodyTimeoutMs / 1000} s`));
    let timer = setTimeout(stalled, bodyTimeoutMs);
    const overall = setTimeout(() => fail(new BodyTimeoutError(`request body not received within ${BODY_MAX_MS / 1000} s`)), BODY_MAX_MS);
    const clearTimers = () => {
      clearTimeout(timer);
      clearTimeout(overall);
    };
    const fail = (e: unknown) => {
      if (done) return;
      done = true;
      clearTimers();
      reject(e);
      discardRest(req);
    };
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      if (done) return;
      clearTimeout(timer);
      timer = setTimeout(stalled, bodyTimeoutMs);
      let values: string[];
      try {
        values = splitter.push(chunk);
      } catch (e) {
        return fail(e);
      }
      if (values.length > 0) {
        done = true;
        clearTimers();
        try {
          resolve(parseJson(values[0]!));
        } catch (e) {
          reject(e);
        }
        discardRest(req);
      } else if (splitter.pendingLength > limit) {
        // Whitespace between values costs nothing and is not counted (etcd accepts it too).
        fail(new BodyTooLargeError(`grpc: received message larger than max (${splitter.pendingLength} vs. ${limit})`));
      }
    });
    req.on("end", () => {
      if (done) return;
      done = true;
      clearTimers();
      try {
        const rest = splitter.finish();
        resolve(rest === undefined ? undefined : parseJson(rest));
      } catch (e) {
        reject(e);
      }
    });
    req.on("error", (e) => fail(e));
    req.on("close", clearTimers);
  });
}

/**
 * One bidirectional stream over HTTP/1.1: JSON values of the request body become "data"
 * events, messages written go out as `{"result": ...}` lines. Headers are sent with the first
 * message, as grpc-gateway does.
 */
class HttpMessageStream<Req, Res> extends EventEmitter implements MessageStream<Req, Res> {
  private finished = false;

  constructor(
    private readonly req: http.IncomingMessage,
    private readonly res: http.ServerResponse,
    private readonly codec: JsonMethod,
  ) {
    super();
    res.on("drain", () => this.emit("drain"));
  }

  pause(): void {
    this.req.pause();
  }

  resume(): void {
    this.req.resume();
  }

  write(msg: Res): boolean {
    if (this.finished || this.res.destroyed) return false;
    this.head(200);
    return this.res.write(JSON.stringify({ result: this.codec.encodeResponse(msg) }) + "\n");
  }

  end(): void {
    if (this.finished) return;
    this.finished = true;
    this.head(200);
    this.res.end();
  }

  destroy(err?: Error): void {
    if (this.finished) return;
    // Our handlers fail a stream with a gRPC-style error: `code` is the status, `details` the message.
    const c = (err as { code?: unknown } | undefined)?.code;
    const code = typeof c === "number" ? c : Status.UNKNOWN;
    const message = err?.message ?? "stream closed";
    const httpCode = httpStatusFromCode(code);
    this.head(httpCode);
    this.finished = true;
    const chunk = { error: { grpc_code: code, http_code: httpCode, message, http_status: http.STATUS_CODES[httpCode] ?? "" } };
    this.res.end(JSON.stringify(chunk) + "\n");
  }

  /** Fails the call before anything was streamed, the way a unary call fails. */
  fail(code: number, message: string): void {
    if (this.finished) return;
    this.finished = true;
    if (this.res.headersSent) this.res.end();
    else sendError(this.res, code, message);
  }

  private head(code: number): void {
    if (!this.res.headersSent) this.res.writeHead(code, { ...CORS, "content-type": "application/json" });
  }
}

type StreamHandler = (stream: HttpMessageStream<unknown, unknown>, caller: Caller) => void;

interface StreamRoute {
  codec: JsonMethod;
  handler: StreamHandler;
  /** Whether the end of the request body half-closes the call (etcd's watch keeps running). */
  forwardEnd: boolean;
}

function serveStream(req: http.IncomingMessage, res: http.ServerResponse, route: StreamRoute, limit: number): void {
  const stream = new HttpMessageStream<unknown, unknown>(req, res, route.codec);
  const splitter = new JsonValueSplitter();
  let first = true;
  let reading = true;
  const stopReading = () => {
    reading = false;
    req.resume();
    if (route.forwardEnd) stream.emit("end");
  };
  const deliver = (text: string): boolean => {
    let msg: unknown;
    try {
      msg = route.codec.decodeRequest(parseJson(text));
    } catch (e) {
      // The first request decides whether the call starts at all; a bad later one only
      // half-closes it, as in grpc-gateway.
      if (first) stream.fail(Status.UNKNOWN, (e as Error).message);
      stopReading();
      return false;
    }
    first = false;
    stream.emit("data", msg);
    return true;
  };
  // A stream may stay quiet for as long as its watches do: no idle timeout on its socket.
  req.socket.setTimeout(0);
  route.handler(stream, httpCaller(req));
  res.on("close", () => {
    if (!res.writableFinished) {
      stream.emit("cancelled");
    }
    stream.emit("close");
  });
  req.setEncoding("utf8");
  req.on("data", (chunk: string) => {
    if (!reading) return;
    let values: string[];
    try {
      values = splitter.push(chunk);
    } catch (e) {
      if (first) stream.fail(Status.INVALID_ARGUMENT, (e as Error).message);
      return stopReading();
    }
    for (const v of values) if (!deliver(v)) return;
    if (splitter.pendingLength > limit) {
      if (first) stream.fail(Status.RESOURCE_EXHAUSTED, `grpc: received message larger than max (${splitter.pendingLength} vs. ${limit})`);
      stopReading();
    }
  });
  req.on("end", () => {
    if (!reading) return;
    let rest: string | undefined;
    try {
      rest = splitter.finish();
    } catch (e) {
      if (first) stream.fail(Status.UNKNOWN, (e as Error).message);
      return stopReading();
    }
    if (rest !== undefined && !deliver(rest)) return;
    stopReading();
  });
}

async function serveUnary(req: http.IncomingMessage, res: http.ServerResponse, codec: JsonMethod, f: UnaryFunction, limit: number, bodyTimeoutMs: number): Promise<void> {
  const caller = httpCaller(req);
  let request: unknown;
  try {
    request = codec.decodeRequest(await readFirstValue(req, limit, bodyTimeoutMs));
  } catch (e) {
    if (e instanceof BodyTooLargeError) return sendError(res, Status.RESOURCE_EXHAUSTED, e.message);
    if (e instanceof BodyTimeoutError) {
      res.once("finish", () => req.socket.destroy());
      return sendJson(res, 408, { error: e.message, message: e.message, code: Status.DEADLINE_EXCEEDED });
    }
    if (e instanceof JsonInputError) return sendError(res, Status.INVALID_ARGUMENT, e.message);
    // Nesting deep enough to exhaust the stack while converting: the same answer as Go's decoder.
    if (e instanceof RangeError) return sendError(res, Status.INVALID_ARGUMENT, "invalid character '[' exceeded max depth");
    return sendError(res, Status.UNKNOWN, (e as Error).message);
  }
  try {
    sendJson(res, 200, codec.encodeResponse(await f(request, caller)));
  } catch (err) {
    const e = Errors.toEtcd(err);
    sendError(res, e.code, e.message);
  }
}

/** An HTTP/1.1 request listener for the gateway; the listener feeds it client connections. */
export function createGateway(member: Member, services: GatewayServices, opts: GatewayOptions): http.Server {
  const unary = new Map<string, { codec: JsonMethod; f: UnaryFunction }>();
  for (const [route, [svc, method]] of Object.entries(UNARY_ROUTES)) {
    const impl = services[svc];
    // A gateway built without the Auth service (unit tests) answers its routes 404.
    if (impl === undefined) continue;
    const f = unaryFunction(impl, method);
    if (!f) throw new Error(`${svc}/${method} has no plain unary function for the gateway`);
    unary.set(route, { codec: jsonMethod(`etcdserverpb.${svc}`, method), f });
  }
  const streams = new Map<string, StreamRoute>([
    [
      "/v3/watch",
      {
        codec: jsonMethod("etcdserverpb.Watch", "Watch"),
        handler: (s, caller) => serveWatch(member, s, opts.auth ? watchCheck(opts.auth, caller) : undefined),
        forwardEnd: false,
      },
    ],
    [
      "/v3/lease/keepalive",
      {
        codec: jsonMethod("etcdserverpb.Lease", "LeaseKeepAlive"),
        handler: (s, caller) => serveLeaseKeepAlive(member, s, opts.auth ? keepAliveCheck(opts.auth, caller) : undefined),
        forwardEnd: true,
      },
    ],
  ]);

  const server = http.createServer((req, res) => {
    const url = (req.url ?? "/").split("?")[0]!;
    if (req.method === "OPTIONS") {
      res.writeHead(200, { ...CORS, "content-length": 0 });
      return void res.end();
    }
    if (url === "/health" || url === "/version") {
      if (req.method !== "GET" && req.method !== "HEAD") return sendText(res, 405, "Method Not Allowed\n");
      if (url === "/version") return sendJson(res, 200, { etcdserver: ETCD_API_VERSION, etcdcluster: ETCD_API_VERSION });
      // As etcd 3.4.23 answers on its client port: {"health":"false"} and 503 while an alarm is active.
      return void checkEtcdHealth(member).then((h) => sendJson(res, h.ok ? 200 : 503, { health: h.ok ? "true" : "false" }));
    }
    const u = unary.get(url);
    const s = streams.get(url);
    if (!u && !s) return sendText(res, 404, "Not Found\n");
    if (req.method !== "POST") return sendText(res, 405, "Method Not Allowed\n");
    if (u) return void serveUnary(req, res, u.codec, u.f, opts.maxBodyBytes, opts.bodyTimeoutMs ?? BODY_TIMEOUT_MS);
    serveStream(req, res, s!, opts.maxBodyBytes);
  });
  // Watch and keep-alive requests stream their bodies for as long as the client likes; unary
  // bodies have their own deadline (opts.bodyTimeoutMs).
  server.requestTimeout = 0;
  server.keepAliveTimeout = 5_000;
  // Headers must come quickly. Node enforces headersTimeout only on servers that listen
  // themselves, and connections reach this one from the client listener, so it is done here.
  const headerDeadlines = new WeakMap<net.Socket, NodeJS.Timeout>();
  server.on("connection", (socket: net.Socket) => {
    const timer = setTimeout(() => {
      if (socket.destroyed) return;
      socket.end("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      socket.destroySoon();
    }, opts.headerTimeoutMs ?? HEADERS_TIMEOUT_MS);
    headerDeadlines.set(socket, timer);
    socket.once("close", () => clearTimeout(timer));
  });
  server.on("request", (req: http.IncomingMessage) => clearTimeout(headerDeadlines.get(req.socket)));
  return server;
}
