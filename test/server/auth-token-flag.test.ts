/**
 * etcd's `--auth-token jwt,...` is not implemented: the member refuses it at start with one
 * plain line and exit code 1 (flag or RAFTKV_AUTH_TOKEN), instead of serving simple tokens to
 * clients configured for JWTs. `simple` (etcd's default) is accepted.
 */
import { strict as assert } from "node:assert";
import * as path from "node:path";
import { parseConfig } from "../../node-runtime/server/config";
import { runCli } from "../helpers/run-cli";
import { assertRefused, BASE_FLAGS } from "./config-fixtures";

const REPO = path.resolve(__dirname, "..", "..");
const JWT = "jwt,pub-key=/pki/jwt.pub,priv-key=/pki/jwt.key,sign-method=RS256,ttl=10m";

describe("--auth-token: simple tokens only, JWT refused at start", () => {
  it("accepts simple (the default) and refuses jwt and unknown types, by flag or env", () => {
    assert.equal(parseConfig(BASE_FLAGS, {}).name, "raftkv-1");
    assert.equal(parseConfig([...BASE_FLAGS, "--auth-token=simple"], {}).name, "raftkv-1");
    assertRefused([...BASE_FLAGS, `--auth-token=${JWT}`], /^--auth-token jwt is not supported: .*--auth-token=simple$/);
    assertRefused([...BASE_FLAGS, "--auth-token=jwt"], /^--auth-token jwt is not supported/);
    assertRefused(BASE_FLAGS, /^--auth-token jwt is not supported/, { RAFTKV_AUTH_TOKEN: JWT });
    assertRefused([...BASE_FLAGS, "--auth-token=opaque"], /--auth-token "opaque" is not supported: the only token type is simple/);
  });

  it("the raftkv process exits 1 with that one line and no stack trace", async function () {
    this.timeout(60_000);
    const r = await runCli(process.execPath, ["--import", "tsx", path.join(REPO, "node-runtime", "cli", "raftkv.ts"), ...BASE_FLAGS, `--auth-token=${JWT}`], {}, { timeoutMs: 50_000, cwd: REPO });
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.split("\n").filter((l) => l.trim() !== "");
    assert.deepEqual(lines, ["raftkv: --auth-token jwt is not supported: raftkv issues etcd's simple tokens only; remove the flag or set --auth-token=simple"]);
  });
});
