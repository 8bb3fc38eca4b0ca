/**
 * etcd's `--auth-token jwt,...` is not implemented: the member refuses it at start with one
 * plain line and exit code 1 (flag or RAFTKV_AUTH_TOKEN), instead of serving simple tokens to
 * clients configured for JWTs. `simple` (etcd's default) is accepted.
 */
import { strict as assert } from "node:assert";
import * as path from "node:path";
import { ConfigError, parseConfig } from "../../node-runtime/server/config";
import { runCli } from "../helpers/run-cli";

const REPO = path.resolve(__dirname, "..", "..");
const base = [
  "--name=raftkv-1",
  "--initial-cluster=raftkv-1=https://127.0.0.1:2380,raftkv-2=https://127.0.0.1:2390,raftkv-3=https://127.0.0.1:2400",
  "--initial-advertise-peer-urls=https://127.0.0.1:2380",
  "--listen-peer-urls=https://127.0.0.1:2380",
  "--listen-client-urls=https://127.0.0.1:2379",
  "--advertise-client-urls=https://127.0.0.1:2379",
  "--cert-file=/pki/server.crt",
  "--key-file=/pki/server.key",
  "--trusted-ca-file=/pki/ca.crt",
  "--client-cert-auth=true",
  "--peer-cert-file=/pki/peer.crt",
  "--peer-key-file=/pki/peer.key",
  "--peer-trusted-ca-file=/pki/ca.crt",
];
const JWT = "jwt,pub-key=/pki/jwt.pub,priv-key=/pki/jwt.key,sign-method=RS256,ttl=10m";

function refused(args: string[], env: NodeJS.ProcessEnv, pattern: RegExp): void {
  assert.throws(
    () => parseConfig(args, env),
    (e: unknown) => e instanceof ConfigError && pattern.test(e.message) && !e.message.includes("\n"),
  );
}

describe("--auth-token: simple tokens only, JWT refused at start", () => {
  it("accepts simple (the default) and refuses jwt and unknown types, by flag or env", () => {
    assert.equal(parseConfig(base, {}).name, "raftkv-1");
    assert.equal(parseConfig([...base, "--auth-token=simple"], {}).name, "raftkv-1");
    refused([...base, `--auth-token=${JWT}`], {}, /^--auth-token jwt is not supported: .*--auth-token=simple$/);
    refused([...base, "--auth-token=jwt"], {}, /^--auth-token jwt is not supported/);
    refused(base, { RAFTKV_AUTH_TOKEN: JWT }, /^--auth-token jwt is not supported/);
    refused([...base, "--auth-token=opaque"], {}, /--auth-token "opaque" is not supported: the only token type is simple/);
  });

  it("the raftkv process exits 1 with that one line and no stack trace", async function () {
    this.timeout(60_000);
    const r = await runCli(process.execPath, ["--import", "tsx", path.join(REPO, "node-runtime", "cli", "raftkv.ts"), ...base, `--auth-token=${JWT}`], {}, { timeoutMs: 50_000, cwd: REPO });
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.split("\n").filter((l) => l.trim() !== "");
    assert.deepEqual(lines, ["raftkv: --auth-token jwt is not supported: raftkv issues etcd's simple tokens only; remove the flag or set --auth-token=simple"]);
  });
});
