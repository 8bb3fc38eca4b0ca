// Bundles the runtime executables into single files that the deployment copies to hosts.
import { build } from "esbuild";
import { mkdirSync } from "node:fs";

const entries = {
  raftkv: "node-runtime/cli/raftkv.ts",
};
mkdirSync("dist", { recursive: true });
for (const [name, entry] of Object.entries(entries)) {
  const outfile = `dist/${name}.cjs`;
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    sourcemap: true,
    banner: { js: "#!/usr/bin/env node" },
    logLevel: "warning",
  });
  console.log(`built ${outfile}`);
}
