// Bundles the runtime executables into single files that the deployment copies to hosts, and
// puts etcd's .proto files beside them (the gRPC services are loaded from them at run time).
import { build } from "esbuild";
import { chmodSync, cpSync, mkdirSync, writeFileSync } from "node:fs";

const entries = {
  raftkv: "node-runtime/cli/raftkv.ts",
  raftkvctl: "node-runtime/cli/raftkvctl.ts",
  "raftkv-local": "node-runtime/cli/local.ts",
};
mkdirSync("dist/bin", { recursive: true });
await Promise.all(
  Object.entries(entries).map(([name, entry]) =>
    build({
      entryPoints: [entry],
      outfile: `dist/${name}.cjs`,
      bundle: true,
      platform: "node",
      target: "node20",
      format: "cjs",
      sourcemap: true,
      banner: { js: "#!/usr/bin/env node" },
      logLevel: "warning",
    }),
  ),
);
cpSync("node-runtime/server/proto", "dist/proto", { recursive: true });
for (const name of ["raftkv", "raftkvctl"]) {
  const wrapper = `dist/bin/${name}`;
  writeFileSync(wrapper, `#!/bin/sh\nexec node "$(dirname "$0")/../${name}.cjs" "$@"\n`);
  chmodSync(wrapper, 0o755);
}
console.log(`built ${Object.keys(entries).map((n) => `dist/${n}.cjs`).join(", ")} and dist/proto/`);
