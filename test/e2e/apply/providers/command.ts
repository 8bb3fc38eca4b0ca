/**
 * command:remote:Command and command:remote:CopyToRemote, run for real over SSH with the
 * lifecycle of @pulumi/command 1.x:
 *  - Command create runs `create`; update runs `update`, or `create` when `update` is unset;
 *    delete runs `delete` when set (with the connection of the state being deleted);
 *  - addPreviousOutputInEnv (default true) asks for PULUMI_COMMAND_STDOUT/STDERR in the
 *    environment on update and delete; like `environment`, they arrive only where sshd's
 *    AcceptEnv lets them;
 *  - a non-zero exit status fails the step, with the command's stderr;
 *  - CopyToRemote copies its asset (FileAsset, StringAsset) to remotePath over SFTP on create
 *    and on update, and leaves the file in place on delete.
 */
import type { RecordedResource } from "../contract";
import { ProviderError, tail, type Provider } from "../provider";
import { copyToRemote, describeTarget, execRemote, sshTargetFromInputs, withSsh } from "../ssh";

function envOf(r: RecordedResource, previous: Record<string, unknown> | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  const given = r.inputs["environment"];
  if (given !== null && typeof given === "object") {
    for (const [k, v] of Object.entries(given as Record<string, unknown>)) if (typeof v === "string") env[k] = v;
  }
  if (previous !== undefined && r.inputs["addPreviousOutputInEnv"] !== false) {
    env["PULUMI_COMMAND_STDOUT"] = typeof previous["stdout"] === "string" ? previous["stdout"] : "";
    env["PULUMI_COMMAND_STDERR"] = typeof previous["stderr"] === "string" ? previous["stderr"] : "";
  }
  return env;
}

async function run(r: RecordedResource, which: "create" | "update" | "delete", command: string, previous: Record<string, unknown> | undefined) {
  const target = sshTargetFromInputs(r.inputs["connection"]);
  const stdin = typeof r.inputs["stdin"] === "string" ? r.inputs["stdin"] : undefined;
  let res;
  try {
    res = await withSsh(target, (c) => execRemote(c, command, { ...(stdin !== undefined ? { stdin } : {}), env: envOf(r, previous) }));
  } catch (e) {
    throw new ProviderError(`${which} of ${r.name} over ssh ${describeTarget(target)}: ${(e as Error).message}`);
  }
  if (res.code !== 0) {
    const status = res.code === null ? `signal ${res.signal ?? "?"}` : `status ${res.code}`;
    throw new ProviderError(`${which} of ${r.name} on ${describeTarget(target)}: process exited with ${status}`, tail(res.stderr || res.stdout));
  }
  return res;
}

function commandText(r: RecordedResource, key: string): string | undefined {
  const v = r.inputs[key];
  return typeof v === "string" && v !== "" ? v : undefined;
}

export const remoteCommand: Provider = {
  async create(r) {
    const cmd = commandText(r, "create");
    if (cmd === undefined) return { ...r.outputs, stdout: "", stderr: "" };
    const res = await run(r, "create", cmd, undefined);
    return { ...r.outputs, stdout: res.stdout, stderr: res.stderr };
  },
  async update(old, next) {
    const cmd = commandText(next, "update") ?? commandText(next, "create");
    if (cmd === undefined) return { ...next.outputs, stdout: old.outputs["stdout"] ?? "", stderr: old.outputs["stderr"] ?? "" };
    const res = await run(next, "update", cmd, old.outputs);
    return { ...next.outputs, stdout: res.stdout, stderr: res.stderr };
  },
  async delete(old) {
    const cmd = commandText(old, "delete");
    if (cmd === undefined) return;
    await run(old, "delete", cmd, old.outputs);
  },
};

const SIG = "4dabf18193072939515e22adb298388d";

/** The asset a CopyToRemote's `source` holds, as the engine recorded it (plain or serialized). */
export function assetOf(source: unknown): { localPath: string } | { text: string } {
  if (source !== null && typeof source === "object") {
    const s = source as Record<string, unknown>;
    const p = s["path"] ?? s["__path"];
    if (typeof p === "string") return { localPath: p };
    const t = s["text"] ?? s["__text"];
    if (typeof t === "string") return { text: t };
    if (s[SIG] !== undefined && typeof s["value"] === "object") return assetOf(s["value"]);
  }
  throw new ProviderError(`CopyToRemote source ${JSON.stringify(source)?.slice(0, 200)} is not a FileAsset or StringAsset (archives are not supported here)`);
}

async function copy(r: RecordedResource): Promise<Record<string, unknown>> {
  const target = sshTargetFromInputs(r.inputs["connection"]);
  const remotePath = r.inputs["remotePath"];
  if (typeof remotePath !== "string" || remotePath === "") throw new ProviderError(`${r.name}: remotePath is missing`);
  const asset = assetOf(r.inputs["source"]);
  try {
    await withSsh(target, (c) => copyToRemote(c, asset, remotePath));
  } catch (e) {
    throw new ProviderError(`copy of ${r.name} to ${describeTarget(target)}:${remotePath}: ${(e as Error).message}`);
  }
  return r.outputs;
}

export const copyToRemoteProvider: Provider = {
  create: (r) => copy(r),
  update: (_old, next) => copy(next),
  delete: async () => undefined,
};
