/**
 * The applier's SSH client against a real SSH server (ssh2's, on loopback): a pinned host key
 * (connection.hostKey, as @pulumi/command 1.x takes it) is the only key it accepts.
 */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { Server } from "ssh2";
import { execRemote, sshTargetFromInputs, withSsh } from "./ssh";

describe("applier SSH: pinned host keys", function () {
  this.timeout(30_000);
  let dir: string;
  let server: Server;
  let port = 0;
  const keys: Record<string, { priv: string; pub: string }> = {};

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "raftkv-ssh-test-"));
    for (const name of ["host", "other", "client"]) {
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path.join(dir, name)]);
      keys[name] = { priv: readFileSync(path.join(dir, name), "utf8"), pub: readFileSync(path.join(dir, `${name}.pub`), "utf8").trim() };
    }
    server = new Server({ hostKeys: [keys["host"]!.priv] }, (client) => {
      client.on("authentication", (ctx) => (ctx.method === "publickey" ? ctx.accept() : ctx.reject(["publickey"])));
      client.on("session", (accept) => {
        accept().once("exec", (acceptExec) => {
          const stream = acceptExec();
          stream.write("ran\n");
          stream.exit(0);
          stream.end();
        });
      });
      client.on("error", () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const target = (hostKey: string | undefined) =>
    sshTargetFromInputs({ host: "127.0.0.1", port, user: "admin", privateKey: keys["client"]!.priv, dialErrorLimit: 0, perDialTimeout: 5, ...(hostKey !== undefined ? { hostKey } : {}) });

  it("connects when the host presents the pinned key, and without a pinned key", async () => {
    for (const t of [target(keys["host"]!.pub), target(undefined)]) {
      const r = await withSsh(t, (c) => execRemote(c, "true"));
      assert.deepEqual([r.code, r.stdout], [0, "ran\n"]);
    }
  });

  it("refuses a host whose key differs from the pinned one, naming both fingerprints", async () => {
    const fp = (name: string) => execFileSync("ssh-keygen", ["-l", "-f", path.join(dir, `${name}.pub`)]).toString().split(" ")[1]!;
    await assert.rejects(
      withSsh(target(keys["other"]!.pub), (c) => execRemote(c, "true")),
      (e: Error) => e.message.includes(`host key mismatch: 127.0.0.1 presented ${fp("host")}, the pinned key is ${fp("other")}`) && e.message.includes("dialErrorLimit 0"),
    );
  });
});
