/**
 * Loads etcd's v3 API (.proto files in ./proto) for both our gRPC server and our clients.
 *
 * Where the .proto texts come from: a bundle built by scripts/build.mjs carries them inside
 * itself (the build defines __RAFTKV_PROTO_FILES__ as the files' texts), so a bundle copied
 * alone to a host works; the install ships nothing else. Running from source, `protoDir()`
 * finds the directory: $RAFTKV_PROTO_DIR, `proto/` next to this module, or
 * `../node-runtime/server/proto` relative to a bundle built without the embedding (tests that
 * bundle with esbuild directly). Either way the .proto files stay the single source of truth,
 * and both paths parse the same texts the same way (`etcdProtoRoot`).
 *
 * The loader options are not a matter of taste; each wrong choice fails silently:
 * `longs: String` because lease, member and cluster IDs exceed 2^53; `keepCase: true` so
 * handlers and clients use the snake_case field names of the .proto; `defaults: true` so
 * every field is present on decoded messages; `enums: String` and `oneofs: true` so enum
 * values and the chosen oneof member arrive by name.
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import * as protobuf from "protobufjs";

/** Defined by scripts/build.mjs in the bundles: relative path -> text of every .proto file. */
declare const __RAFTKV_PROTO_FILES__: Readonly<Record<string, string>> | undefined;

export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

const RPC_PROTO = "etcdserverpb/rpc.proto";
/** Every file the API needs, imports before importers. */
export const PROTO_FILES = ["mvccpb/kv.proto", "authpb/auth.proto", RPC_PROTO] as const;

/** The directory holding etcdserverpb/, mvccpb/ and authpb/. Throws naming every place tried. */
export function protoDir(): string {
  const candidates = [
    process.env["RAFTKV_PROTO_DIR"],
    path.join(__dirname, "proto"),
    path.join(__dirname, "..", "node-runtime", "server", "proto"),
  ].filter((d): d is string => d !== undefined && d !== "");
  for (const dir of candidates) {
    if (existsSync(path.join(dir, RPC_PROTO))) return dir;
  }
  throw new Error(`etcd API definitions (${RPC_PROTO}) not found; looked in: ${candidates.join(", ")}`);
}

/** The .proto texts by relative path: embedded in a bundle, else read from `protoDir()`. */
export function protoSources(): Readonly<Record<string, string>> {
  if (typeof __RAFTKV_PROTO_FILES__ !== "undefined") return __RAFTKV_PROTO_FILES__;
  const dir = protoDir();
  return Object.fromEntries(PROTO_FILES.map((f) => [f, readFileSync(path.join(dir, f), "utf8")]));
}

let cachedRoot: protobuf.Root | undefined;

/** etcd's API parsed once per process, field names as written in the .proto (keepCase). */
export function etcdProtoRoot(): protobuf.Root {
  if (cachedRoot) return cachedRoot;
  const sources = protoSources();
  const root = new protobuf.Root();
  for (const f of PROTO_FILES) {
    const text = sources[f];
    if (text === undefined) throw new Error(`etcd API definitions (${f}) missing from the embedded set`);
    protobuf.parse(text, root, { keepCase: true });
  }
  root.resolveAll();
  cachedRoot = root;
  return root;
}

export interface EtcdGrpcPackage {
  /** The raw package definition, e.g. for grpc reflection or a custom loader. */
  packageDefinition: protoLoader.PackageDefinition;
  /** Service definitions, for `server.addService(...)`. */
  services: {
    KV: grpc.ServiceDefinition;
    Watch: grpc.ServiceDefinition;
    Lease: grpc.ServiceDefinition;
    Cluster: grpc.ServiceDefinition;
    Maintenance: grpc.ServiceDefinition;
    Auth: grpc.ServiceDefinition;
  };
  /** Client constructors: `new clients.KV(address, credentials)`. */
  clients: {
    KV: grpc.ServiceClientConstructor;
    Watch: grpc.ServiceClientConstructor;
    Lease: grpc.ServiceClientConstructor;
    Cluster: grpc.ServiceClientConstructor;
    Maintenance: grpc.ServiceClientConstructor;
    Auth: grpc.ServiceClientConstructor;
  };
}

let cached: EtcdGrpcPackage | undefined;

/** Loads (once per process) and returns etcd's gRPC services. */
export function loadEtcdGrpc(): EtcdGrpcPackage {
  if (cached) return cached;
  const packageDefinition = protoLoader.fromJSON(etcdProtoRoot().toJSON(), PROTO_LOADER_OPTIONS);
  const root = grpc.loadPackageDefinition(packageDefinition);
  const pb = root["etcdserverpb"] as grpc.GrpcObject | undefined;
  if (!pb) throw new Error("etcdserverpb package missing from the loaded definitions");
  const ctor = (name: string): grpc.ServiceClientConstructor => {
    const c = pb[name];
    if (typeof c !== "function" || !("service" in c)) throw new Error(`service etcdserverpb.${name} missing`);
    return c as grpc.ServiceClientConstructor;
  };
  const clients = {
    KV: ctor("KV"),
    Watch: ctor("Watch"),
    Lease: ctor("Lease"),
    Cluster: ctor("Cluster"),
    Maintenance: ctor("Maintenance"),
    Auth: ctor("Auth"),
  };
  cached = {
    packageDefinition,
    clients,
    services: {
      KV: clients.KV.service,
      Watch: clients.Watch.service,
      Lease: clients.Lease.service,
      Cluster: clients.Cluster.service,
      Maintenance: clients.Maintenance.service,
      Auth: clients.Auth.service,
    },
  };
  return cached;
}
