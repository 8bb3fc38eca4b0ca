/**
 * Loads etcd's v3 API (.proto files in ./proto) for both our gRPC server and our clients.
 *
 * Where the .proto files are found: `protoDir()` tries, in order, $RAFTKV_PROTO_DIR, `proto/`
 * next to this module (running from source with tsx, or a bundle whose build copied the
 * folder to `dist/proto`), and `../node-runtime/server/proto` relative to the bundle (a
 * bundle in the repository's dist/). Reading the files at run time keeps the .proto text the
 * single source of truth; a bundle shipped alone must ship `dist/proto` beside it.
 *
 * The loader options are not a matter of taste; each wrong choice fails silently:
 * `longs: String` because lease, member and cluster IDs exceed 2^53; `keepCase: true` so
 * handlers and clients use the snake_case field names of the .proto; `defaults: true` so
 * every field is present on decoded messages; `enums: String` and `oneofs: true` so enum
 * values and the chosen oneof member arrive by name.
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { existsSync } from "node:fs";
import * as path from "node:path";

export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

const RPC_PROTO = "etcdserverpb/rpc.proto";

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
  const dir = protoDir();
  const packageDefinition = protoLoader.loadSync(path.join(dir, RPC_PROTO), {
    ...PROTO_LOADER_OPTIONS,
    includeDirs: [dir],
  });
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
