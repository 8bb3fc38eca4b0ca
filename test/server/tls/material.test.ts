import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TlsConfigError, loadTlsMaterial } from "../../../node-runtime/server/tls/material";
import { makeCa, makeLeaf, writeMemberFiles, type MemberFiles, type TestCa, type TestLeaf } from "./certs";

describe("TLS material from files", () => {
  let dir: string;
  let ca: TestCa;
  let ca2: TestCa;
  let leaf: TestLeaf;
  let files: MemberFiles;

  before(async () => {
    ca = await makeCa("ca-one");
    ca2 = await makeCa("ca-two");
    leaf = await makeLeaf(ca, "member-1");
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "raftkv-tls-"));
    files = writeMemberFiles(dir, leaf, [ca]);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("loads certificate, key and CA into secure context options", () => {
    const m = loadTlsMaterial(files);
    assert.equal(m.options.cert, leaf.certPem);
    assert.equal(m.options.key, leaf.keyPem);
    assert.deepEqual(m.options.ca, [ca.certPem]);
    assert.equal(m.subject, "CN=member-1");
    assert.deepEqual(m.caSubjects, ["CN=ca-one"]);
  });

  it("trusts every CA of a concatenated bundle", () => {
    writeFileSync(files.trustedCaFile, `# rotation bundle\n${ca.certPem}\n${ca2.certPem}`);
    const m = loadTlsMaterial(files);
    assert.deepEqual(m.caSubjects, ["CN=ca-one", "CN=ca-two"]);
    assert.equal(m.options.ca.length, 2);
  });

  const cases: Array<[string, (f: MemberFiles) => void, (f: MemberFiles) => string]> = [
    ["a missing certificate", (f) => rmSync(f.certFile), (f) => `cannot read --peer-cert-file ${f.certFile}: no such file`],
    ["a missing key", (f) => rmSync(f.keyFile), (f) => `cannot read --peer-key-file ${f.keyFile}: no such file`],
    ["a missing CA file", (f) => rmSync(f.trustedCaFile), (f) => `cannot read --peer-trusted-ca-file ${f.trustedCaFile}: no such file`],
    ["a directory as certificate", (f) => { rmSync(f.certFile); mkdirSync(f.certFile); }, (f) => `cannot read --peer-cert-file ${f.certFile}: is a directory`],
    ["a certificate that is not PEM", (f) => writeFileSync(f.certFile, "hello"), (f) => `invalid --peer-cert-file ${f.certFile}: no PEM certificate found`],
    ["a key that is not PEM", (f) => writeFileSync(f.keyFile, "hello"), (f) => `invalid --peer-key-file ${f.keyFile}: not a PEM private key`],
    ["an empty CA file", (f) => writeFileSync(f.trustedCaFile, ""), (f) => `invalid --peer-trusted-ca-file ${f.trustedCaFile}: no PEM certificate found`],
  ];
  for (const [what, breakIt, message] of cases) {
    it(`names the flag and file for ${what}`, () => {
      breakIt(files);
      assert.throws(
        () => loadTlsMaterial(files),
        (err: unknown) => err instanceof TlsConfigError && err.message.startsWith(message(files)),
      );
    });
  }

  it("refuses a key that does not belong to the certificate", async () => {
    const other = await makeLeaf(ca, "member-2");
    writeFileSync(files.keyFile, other.keyPem);
    assert.throws(() => loadTlsMaterial(files), {
      message: `--peer-key-file ${files.keyFile} does not match the certificate in --peer-cert-file ${files.certFile}`,
    });
  });

  it("uses the client flag names without a prefix", () => {
    rmSync(files.certFile);
    assert.throws(() => loadTlsMaterial({ ...files, flagPrefix: "" }), { message: /^cannot read --cert-file / });
  });
});
