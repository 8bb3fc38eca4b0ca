// Bundles the runtime executables into single self-contained files that the deployment copies
// to hosts: etcd's .proto texts are embedded (node-runtime/server/proto.ts reads them from
// __RAFTKV_PROTO_FILES__), so raftkv.cjs and raftkvctl.cjs need nothing beside them.
//
//   node scripts/build.mjs [--outdir DIR] [entry ...]     (default: dist/, every entry)
//
// Files are written to a scratch directory and renamed into place, so a concurrent reader
// (e.g. `pulumi up` digesting the bundles while another build runs) never sees a half-written file.
import { build } from "esbuild";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const ENTRIES = {
  raftkv: "node-runtime/cli/raftkv.ts",
  raftkvctl: "node-runtime/cli/raftkvctl.ts",
  "raftkv-local": "node-runtime/cli/local.ts",
};

/** Every .proto under node-runtime/server/proto, by path relative to it. */
function protoFiles(dir, prefix = "") {
  const out = {};
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = prefix === "" ? e.name : `${prefix}/${e.name}`;
    if (e.isDirectory()) Object.assign(out, protoFiles(path.join(dir, e.name), rel));
    else if (e.name.endsWith(".proto")) out[rel] = readFileSync(path.join(dir, e.name), "utf8");
  }
  return out;
}

const args = process.argv.slice(2);
let outdir = path.join(root, "dist");
const names = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--outdir") outdir = path.resolve(args[++i]);
  else if (args[i] in ENTRIES) names.push(args[i]);
  else {
    console.error(`build: unknown argument ${args[i]} (entries: ${Object.keys(ENTRIES).join(", ")})`);
    process.exit(2);
  }
}
const selected = names.length > 0 ? names : Object.keys(ENTRIES);
const protos = protoFiles(path.join(root, "node-runtime", "server", "proto"));

mkdirSync(path.join(outdir, "bin"), { recursive: true });
const scratch = mkdtempSync(path.join(outdir, ".build-"));
try {
  await Promise.all(
    selected.map((name) =>
      build({
        absWorkingDir: root,
        entryPoints: [ENTRIES[name]],
        outfile: path.join(scratch, `${name}.cjs`),
        bundle: true,
        platform: "node",
        target: "node20",
        format: "cjs",
        sourcemap: true,
        banner: { js: "#!/usr/bin/env node" },
        define: { __RAFTKV_PROTO_FILES__: JSON.stringify(protos) },
        logLevel: "warning",
      }),
    ),
  );
  for (const name of selected) {
    chmodSync(path.join(scratch, `${name}.cjs`), 0o755);
    renameSync(path.join(scratch, `${name}.cjs.map`), path.join(outdir, `${name}.cjs.map`));
    renameSync(path.join(scratch, `${name}.cjs`), path.join(outdir, `${name}.cjs`));
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
for (const name of selected.filter((n) => n !== "raftkv-local")) {
  const wrapper = path.join(outdir, "bin", name);
  writeFileSync(wrapper, `#!/bin/sh\nexec node "$(dirname "$0")/../${name}.cjs" "$@"\n`);
  chmodSync(wrapper, 0o755);
}
console.log(`built ${selected.map((n) => path.relative(process.cwd(), path.join(outdir, `${n}.cjs`))).join(", ")} (etcd API definitions embedded)`);
