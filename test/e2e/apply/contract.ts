/**
 * What the applier needs of the engine's plans and of the lab, as E2E.md fixes them. Written
 * here as structural types so the applier builds and is tested on its own while test/e2e/engine
 * and test/e2e/lab land; the real modules' types are assignable to these.
 */
import type { ChildProcess } from "node:child_process";

export interface RecordedResource {
  urn: string;
  type: string;
  name: string;
  custom: boolean;
  parent?: string;
  inputs: Record<string, unknown>;
  secretInputs: string[];
  dependencies: string[];
  options: {
    deleteBeforeReplace?: boolean;
    replaceOnChanges?: string[];
    ignoreChanges?: string[];
    protect?: boolean;
    retainOnDelete?: boolean;
    deletedWith?: string;
  };
  id: string;
  outputs: Record<string, unknown>;
}

export interface StackState {
  resources: RecordedResource[];
  outputs: Record<string, unknown>;
}

export type StepOp = "create" | "update" | "replace" | "delete";

export interface Step {
  op: StepOp;
  urn: string;
  old?: RecordedResource;
  new?: RecordedResource;
  diffKeys: string[];
  deleteBeforeReplace: boolean;
  /** Indexes of steps that must finish first. */
  after: number[];
}

export interface Plan {
  steps: Step[];
  next: StackState;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface HostSpec {
  name: string;
  instanceId: string;
  privateIp: string;
  userData?: string;
  sshAuthorizedKeys: string[];
  dataDisk?: { sizeMiB: number };
}

export interface LabHost {
  readonly name: string;
  readonly privateIp: string;
  readonly netnsPath: string;
  exec(argv: string[], opts?: { input?: string; timeoutMs?: number }): Promise<ExecResult>;
  stop(): Promise<void>;
  kill(): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
  setHostsEntries(entries: Record<string, string>): Promise<void>;
}

export interface LabNetNs {
  readonly name: string;
  readonly path: string;
  spawn(argv: string[]): ChildProcess;
  close(): Promise<void>;
}

export interface LabLike {
  addHost(spec: HostSpec): Promise<LabHost>;
  host(name: string): LabHost | undefined;
  hostByIp(ip: string): LabHost | undefined;
  addNamespace(name: string, ips: string[]): Promise<LabNetNs>;
  runnerCanReach(ip: string): boolean;
}
