/**
 * Child process of runProgram: runs the Pulumi program (index.ts) once under
 * pulumi.runtime.setMocks and writes what it declared as a StackState.
 *
 * The mock monitor's registerResource is replaced so that each registration is recorded with
 * what the real engine would keep: options (deleteBeforeReplace, replaceOnChanges,
 * ignoreChanges, protect, retainOnDelete, deletedWith) and dependencies (dependsOn and property
 * dependencies), which `mocks.newResource` never sees. URNs are built like the real engine's
 * (the root stack's type is not part of its children's URNs).
 *
 * argv: <input.json> <output.json>; input = { config, secretKeys, prior, project, stack, program, providers }.
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { MockProviders, type ProviderOptions } from "./mockProvider";
import type { RecordedResource, ResourceOptions, StackState } from "./types";

interface ChildInput {
  config: Record<string, string>;
  secretKeys: string[];
  prior: StackState | undefined;
  project: string;
  stack: string;
  program: string;
  providers: ProviderOptions;
}

const SIG = "4dabf18193072939515e22adb298388d";
const SECRET = "1b47061264138c4ac30d75fd1eb44270";
const ASSET = "c44067f5952c0a294b673a41bacd8c17";
const ARCHIVE = "0def7320c3a5731c473e5ecbe6d01bc7";
const RESOURCE = "5cf8f73096256a8f31e491e813e4eb8e";
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

const pulumiRequire = createRequire(require.resolve("@pulumi/pulumi"));
/* eslint-disable @typescript-eslint/no-require-imports */
const rpc = pulumiRequire("./runtime/rpc") as {
  deserializeProperties(s: unknown): Record<string, unknown>;
  serializeProperties(label: string, props: Record<string, unknown>): Promise<Record<string, unknown>>;
};
const mocksModule = pulumiRequire("./runtime/mocks") as { MockMonitor: { prototype: Record<string, unknown> } };
const resproto = pulumiRequire("./proto/resource_pb") as { RegisterResourceResponse: new () => { setUrn(u: string): void; setId(i: string): void; setObject(o: unknown): void } };
const structproto = pulumiRequire("google-protobuf/google/protobuf/struct_pb") as { Struct: { fromJavaScript(v: unknown): unknown } };
const yaml = pulumiRequire("js-yaml") as { load(s: string): unknown };
const settings = pulumiRequire("./runtime/settings") as { waitForRPCs(): Promise<void> };

/** Plain JSON from the wire form of a property value; `secret` notes that a secret was met. */
function plain(v: unknown, secret: { seen: boolean }, projectDir: string): unknown {
  if (v === UNKNOWN) return "$unknown";
  if (Array.isArray(v)) return v.map((x) => plain(x, secret, projectDir));
  if (v === null || typeof v !== "object") return v;
  const o = v as Record<string, unknown>;
  switch (o[SIG]) {
    case SECRET:
      secret.seen = true;
      return plain(o["value"], secret, projectDir);
    case ASSET: {
      if (typeof o["path"] === "string") {
        const file = path.resolve(projectDir, o["path"]);
        let hash: string;
        try {
          hash = createHash("sha256").update(readFileSync(file)).digest("hex");
        } catch {
          hash = "missing";
        }
        return { $asset: "file", path: file, hash };
      }
      if (typeof o["text"] === "string") return { $asset: "string", text: o["text"], hash: createHash("sha256").update(o["text"]).digest("hex") };
      return { $asset: "remote", uri: o["uri"] };
    }
    case ARCHIVE:
      return { $archive: o["path"] ?? o["uri"] ?? "assets" };
    case RESOURCE:
      return { $resource: o["urn"], id: o["id"] };
    default: {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(o)) out[k] = plain(x, secret, projectDir);
      return out;
    }
  }
}

function plainInputs(raw: Record<string, unknown>, projectDir: string): { inputs: Record<string, unknown>; secretInputs: string[] } {
  const inputs: Record<string, unknown> = {};
  const secretInputs: string[] = [];
  for (const [k, v] of Object.entries(raw)) {
    const s = { seen: false };
    inputs[k] = plain(v, s, projectDir);
    if (s.seen) secretInputs.push(k);
  }
  return { inputs, secretInputs };
}

/** Pulumi.yaml `config:` defaults, applied by the CLI to keys the stack does not set. */
function projectDefaults(projectDir: string, project: string): Record<string, string> {
  const doc = yaml.load(readFileSync(path.join(projectDir, "Pulumi.yaml"), "utf8")) as { config?: Record<string, { default?: unknown } | unknown> };
  const out: Record<string, string> = {};
  for (const [key, spec] of Object.entries(doc.config ?? {})) {
    if (spec === null || typeof spec !== "object" || !("default" in spec)) continue;
    const full = key.includes(":") ? key : `${project}:${key}`;
    const d = (spec as { default: unknown }).default;
    out[full] = typeof d === "string" ? d : JSON.stringify(d);
  }
  return out;
}

async function main(): Promise<void> {
  const [inputFile, outputFile] = process.argv.slice(2);
  if (!inputFile || !outputFile) throw new Error("usage: child.ts <input.json> <output.json>");
  const input = JSON.parse(readFileSync(inputFile, "utf8")) as ChildInput;
  const projectDir = path.dirname(input.program);
  const providers = new MockProviders(input.prior, input.providers);
  const recorded: RecordedResource[] = [];
  const monitorUrn = (parent: string, type: string, name: string): string => {
    let qualified = type;
    if (parent !== "") {
      // The real engine qualifies a child's type with its parent's whole type chain, except
      // for the root stack (the mock monitor keeps only the last parent type).
      const parentQualified = parent.split("::")[2]!;
      if (parentQualified !== "pulumi:pulumi:Stack") qualified = `${parentQualified}$${type}`;
    }
    return `urn:pulumi:${input.stack}::${input.project}::${qualified}::${name}`;
  };

  const proto = mocksModule.MockMonitor.prototype as Record<string, unknown>;
  proto["registerResource"] = async function (this: { resources: Map<string, unknown> }, req: RegisterRequest, callback: (err: unknown, resp?: unknown) => void) {
    try {
      const type = req.getType();
      const name = req.getName();
      const parent = req.getParent();
      const custom = req.getCustom();
      const urn = monitorUrn(parent, type, name);
      const rawObject = req.getObject();
      const raw = (rawObject ? (rawObject as { toJavaScript(): Record<string, unknown> }).toJavaScript() : {}) as Record<string, unknown>;
      const { inputs, secretInputs } = plainInputs(raw, projectDir);
      const deps: string[] = [];
      const addDep = (u: string) => {
        if (u !== "" && !deps.includes(u)) deps.push(u);
      };
      req.getDependenciesList().forEach(addDep);
      const propertyDependencies: Record<string, string[]> = {};
      req.getPropertydependenciesMap().forEach((v, k) => {
        v.getUrnsList().forEach(addDep);
        const urns = v.getUrnsList().filter((u) => u !== "");
        if (urns.length > 0) propertyDependencies[k] = urns;
      });
      const options: ResourceOptions = {};
      if (req.getDeletebeforereplace()) options.deleteBeforeReplace = true;
      if (req.getReplaceonchangesList().length > 0) options.replaceOnChanges = req.getReplaceonchangesList();
      if (req.getIgnorechangesList().length > 0) options.ignoreChanges = req.getIgnorechangesList();
      if (req.getProtect() === true) options.protect = true;
      if (req.getRetainondelete() === true) options.retainOnDelete = true;
      if (req.getDeletedwith() !== "") options.deletedWith = req.getDeletedwith();

      let id = "";
      let state: Record<string, unknown> = {};
      let outputs: Record<string, unknown> = {};
      if (custom) {
        const created = await providers.register({ urn, type, name, inputs, options });
        id = created.id;
        // The SDK's view: the inputs as sent (secrets stay wrapped) plus the computed outputs,
        // those the real provider marks secret wrapped as secrets.
        const wire = rpc.deserializeProperties(rawObject);
        state = { ...wire };
        for (const [k, v] of Object.entries(created.computed)) state[k] = created.secretOutputs.includes(k) ? { [SIG]: SECRET, value: v } : v;
        outputs = { ...inputs, ...created.computed };
      }
      recorded.push({
        urn,
        type,
        name,
        custom,
        ...(parent !== "" ? { parent } : {}),
        inputs,
        secretInputs,
        dependencies: deps,
        propertyDependencies,
        options,
        id,
        outputs,
      });
      const serialized = await rpc.serializeProperties("", state);
      this.resources.set(urn, { urn, id: id || null, state: serialized });
      const response = new resproto.RegisterResourceResponse();
      response.setUrn(urn);
      response.setId(id);
      response.setObject(structproto.Struct.fromJavaScript(serialized));
      callback(null, response);
    } catch (err) {
      process.stderr.write(`engine: registerResource failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      callback(err, undefined);
    }
  };

  await pulumi.runtime.setMocks(
    {
      newResource: () => {
        throw new Error("engine: newResource is not used (registerResource is replaced)");
      },
      call: (args) => providers.call(args.token, args.inputs as Record<string, unknown>),
    },
    input.project,
    input.stack,
    false,
  );
  const defaults = projectDefaults(projectDir, input.project);
  pulumi.runtime.setAllConfig({ ...defaults, ...input.config }, input.secretKeys);

  // As the Node.js language host does: the program's exports become the stack outputs.
  const exportsOf = await pulumi.runtime.runInPulumiStack(async () => {
    // Loaded only now, with the mocks and config in place.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(input.program) as Record<string, unknown>;
    return mod;
  });
  // As the language host's disconnect(): every outstanding registration finishes first.
  await settings.waitForRPCs();
  const outputs: Record<string, unknown> = {};
  for (const [k, v] of Object.entries((exportsOf ?? {}) as Record<string, unknown>)) {
    outputs[k] = plain(await resolveDeep(v), { seen: false }, projectDir);
  }
  // Outputs of resources declared after an invoke (the zone lookup) resolve last: as the language
  // host, which registers the stack's outputs before it disconnects, wait again for what they started.
  await settings.waitForRPCs();
  const state: StackState = { resources: recorded, outputs };
  writeFileSync(outputFile, JSON.stringify(state));
}

/** Stack outputs arrive massaged (Outputs resolved); anything still an Output is resolved here. */
async function resolveDeep(v: unknown): Promise<unknown> {
  if (pulumi.Output.isInstance(v)) return resolveDeep(await new Promise((r) => (v as pulumi.Output<unknown>).apply(r)));
  if (Array.isArray(v)) return Promise.all(v.map(resolveDeep));
  if (v !== null && typeof v === "object" && !(SIG in v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = await resolveDeep(x);
    return out;
  }
  return v;
}

interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getCustom(): boolean;
  getObject(): unknown;
  getDependenciesList(): string[];
  getPropertydependenciesMap(): { forEach(cb: (v: { getUrnsList(): string[] }, k: string) => void): void };
  getDeletebeforereplace(): boolean;
  getReplaceonchangesList(): string[];
  getIgnorechangesList(): string[];
  getProtect(): boolean | undefined;
  getRetainondelete(): boolean | undefined;
  getDeletedwith(): string;
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`engine: the program failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
