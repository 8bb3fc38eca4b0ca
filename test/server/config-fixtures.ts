/**
 * A member's complete flag set as the topology plan renders it (member raftkv-1 of three on
 * loopback, mutual TLS), and the check that parseConfig refuses a set with one plain line:
 * shared by the configuration suites.
 */
import { strict as assert } from "node:assert";
import { ConfigError, parseConfig } from "../../node-runtime/server/config";

export const BASE_FLAGS: readonly string[] = [
  "--name=raftkv-1",
  "--initial-cluster=raftkv-1=https://127.0.0.1:2380,raftkv-2=https://127.0.0.1:2390,raftkv-3=https://127.0.0.1:2400",
  "--initial-advertise-peer-urls=https://127.0.0.1:2380",
  "--listen-peer-urls=https://127.0.0.1:2380",
  "--listen-client-urls=https://127.0.0.1:2379",
  "--advertise-client-urls=https://127.0.0.1:2379",
  "--listen-metrics-urls=http://127.0.0.1:2381",
  "--cert-file=/pki/server.crt",
  "--key-file=/pki/server.key",
  "--trusted-ca-file=/pki/ca.crt",
  "--client-cert-auth=true",
  "--peer-cert-file=/pki/peer.crt",
  "--peer-key-file=/pki/peer.key",
  "--peer-trusted-ca-file=/pki/ca.crt",
];

/** parseConfig(args, env) throws a ConfigError whose message matches `pattern` and is one line. */
export function assertRefused(args: readonly string[], pattern: RegExp, env: NodeJS.ProcessEnv = {}): void {
  assert.throws(
    () => parseConfig(args, env),
    (e: unknown) => e instanceof ConfigError && pattern.test(e.message) && !e.message.includes("\n"),
  );
}
