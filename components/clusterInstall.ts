import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { JoinPlan } from "./membership";
import type { InstallBackup } from "./backup";
import type { IssuedCert, MemberCerts } from "./pki";
import { CLIENT_CERT_FILE, CLIENT_KEY_FILE, memberCertFileNames, renderFileBundle, renderMemberUnit, type MemberRuntimeOptions } from "./hostFiles";
import {
  renderMemberInstallScript,
  renderMemberLeaveScript,
  renderMemberRollScript,
  renderTrustScript,
  renderWorkerInstallScript,
  sshInvocation,
  type HostRole,
} from "./hostScripts";

export interface SshSettings {
  user: string;
  privateKey: pulumi.Input<string>;
  /** Jump host, when Pulumi does not run inside the VPC: the stack's own bastion or raftkv:bastionHost. */
  bastion?: { host: pulumi.Input<string>; user: string };
  /**
   * Outputs of what the SSH path needs (security-group rules, the bastion): every connection
   * carries them, so the engine runs each command after them and deletes them only after the
   * last command (a leave script) ran.
   */
  requires?: pulumi.Input<string>[];
}

export interface InstallHost {
  name: string;
  privateIp: string;
  /** The instance; commands depend on it so they run after it exists and before it is deleted. */
  instance: pulumi.Resource;
}

export interface ClusterInstallArgs {
  /** Every member's join plan, in member order. */
  joins: JoinPlan[];
  masters: Record<string, InstallHost>;
  workers: Array<InstallHost & { cert: IssuedCert }>;
  memberCerts: Record<string, MemberCerts>;
  /** The client CA bundle (ca.crt) for every host. */
  caBundlePem: pulumi.Input<string>;
  /** The peer CA bundle (peer-ca.crt) for the masters. */
  peerCaBundlePem: pulumi.Input<string>;
  /** https://<load balancer>:2379, written into the workers' env files. */
  clientEndpoint: pulumi.Input<string>;
  clusterToken: string;
  /** The members' heap, storage quota and raft timing (settings.ts). */
  memberRuntime?: Omit<MemberRuntimeOptions, "clusterToken">;
  ssh: SshSettings;
  /** Local paths of the runtime bundles (read by Pulumi at deployment time, never by tests). */
  memberBundlePath: string;
  ctlBundlePath: string;
  /** A digest of the bundles' content: a new build re-runs the install and rolls the members. */
  runtimeRevision: pulumi.Input<string>;
  /** Backups and restore (components/backup.ts); none when undefined. */
  backup?: InstallBackup;
}

function digest(parts: readonly string[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p).update("\0");
  return h.digest("hex").slice(0, 16);
}

/**
 * Puts the runtime on the hosts and keeps it there, over SSH:
 *  - trust (every host, in parallel): prepare the host, write the CA bundles (client CA on every
 *    host, peer CA on masters), SIGHUP on change;
 *  - install (per member): certificates, bundles, unit, env file; bootstrap members start in
 *    parallel, each joining member is added and started only after the previous one rolled;
 *  - roll (per member, chained): on any change, restart or reload one member at a time, each
 *    waiting for the whole cluster to be healthy before the next; ordered after every host's
 *    trust so a new CA is trusted everywhere before any leaf it signed is presented;
 *  - on deletion, a joining member is removed through the membership API before its instance
 *    goes; the chain makes removals happen highest member first, one at a time.
 */
export class ClusterInstall extends pulumi.ComponentResource {
  /** The last member's roll: complete when every member runs the current revision and is healthy. */
  readonly ready: pulumi.Output<string>;

  constructor(name: string, args: ClusterInstallArgs, opts?: pulumi.ComponentResourceOptions) {
    super("raftkv:install:ClusterInstall", name, {}, opts);
    const uploadDir = args.ssh.user === "root" ? "/root" : `/home/${args.ssh.user}`;
    const requires = args.ssh.requires ?? [];
    const gated = (host: pulumi.Input<string>): pulumi.Input<string> =>
      requires.length === 0 ? host : pulumi.all([host, ...requires]).apply(([h]) => h);
    const connection = (host: string): command.types.input.remote.ConnectionArgs => ({
      host: gated(host),
      user: args.ssh.user,
      privateKey: pulumi.secret(args.ssh.privateKey),
      dialErrorLimit: 40,
      perDialTimeout: 15,
      ...(args.ssh.bastion !== undefined
        ? {
            proxy: {
              host: gated(args.ssh.bastion.host),
              user: args.ssh.bastion.user,
              privateKey: pulumi.secret(args.ssh.privateKey),
              // A bastion created by this `up` may still be booting.
              dialErrorLimit: 40,
              perDialTimeout: 15,
            },
          }
        : {}),
    });
    const caFiles = memberCertFileNames();
    const trustStdin: Record<HostRole, pulumi.Output<string>> = {
      master: pulumi.all([args.caBundlePem, args.peerCaBundlePem]).apply(([ca, peerCa]) =>
        renderFileBundle([
          { name: caFiles.ca, content: ca },
          { name: caFiles.peerCa, content: peerCa },
        ]),
      ),
      worker: pulumi.output(args.caBundlePem).apply((pem) => renderFileBundle([{ name: caFiles.ca, content: pem }])),
    };

    const trust = (host: InstallHost, role: HostRole): command.remote.Command =>
      new command.remote.Command(
        `${host.name}-trust`,
        {
          connection: connection(host.privateIp),
          create: sshInvocation(renderTrustScript("create", role), `${host.name}-trust`),
          update: sshInvocation(renderTrustScript("update", role), `${host.name}-trust`),
          stdin: trustStdin[role],
        },
        { parent: this, dependsOn: [host.instance] },
      );
    const upload = (host: InstallHost, file: string, source: string, after: pulumi.Resource): command.remote.CopyToRemote =>
      new command.remote.CopyToRemote(
        `${host.name}-upload-${file.replace(/\.cjs$/, "")}`,
        { connection: connection(host.privateIp), source: new pulumi.asset.FileAsset(source), remotePath: `${uploadDir}/${file}` },
        { parent: this, dependsOn: [after] },
      );

    const masterTrusts: Record<string, command.remote.Command> = {};
    for (const j of args.joins) masterTrusts[j.member.name] = trust(this.host(args, j.member.name), "master");
    const workerTrusts = args.workers.map((w) => trust(w, "worker"));
    const everyTrust = [...Object.values(masterTrusts), ...workerTrusts];

    const names = memberCertFileNames();
    const rolls: command.remote.Command[] = [];
    for (const j of args.joins) {
      const host = this.host(args, j.member.name);
      const certs = args.memberCerts[j.member.name];
      if (certs === undefined) throw new Error(`no certificates for member ${j.member.name}`);
      const uploads = [
        upload(host, "raftkv.cjs", args.memberBundlePath, masterTrusts[j.member.name]!),
        upload(host, "raftkvctl.cjs", args.ctlBundlePath, masterTrusts[j.member.name]!),
      ];
      const runtime = { ...args.memberRuntime, join: j, clusterToken: args.clusterToken, uploadDir };
      // The backup agent's files go on first: a restore and a joining member's pre-change backup use them.
      const backupDeps = args.backup?.declare({ parent: this, connection, uploadDir }, j, host) ?? [];
      const beforeFirstStart = args.backup?.restoreStep(j, uploadDir);
      const hooks = { backupBeforeChange: args.backup?.beforeChange === true, ...(beforeFirstStart !== undefined ? { beforeFirstStart } : {}) };
      const revision = pulumi
        .all([args.runtimeRevision, certs.server.certPem, certs.peer.certPem, certs.ops.certPem])
        .apply(([rt, server, peer, ops]) => digest([rt, server, peer, ops, renderMemberUnit(j, runtime)]));
      const stdin = pulumi.secret(
        pulumi
          .all([certs.server.certPem, certs.server.keyPem, certs.peer.certPem, certs.peer.keyPem, certs.ops.certPem, certs.ops.keyPem])
          .apply(([sc, sk, pc, pk, oc, ok]) =>
            renderFileBundle([
              { name: names.serverCert, content: sc },
              { name: names.serverKey, content: sk },
              { name: names.peerCert, content: pc },
              { name: names.peerKey, content: pk },
              { name: CLIENT_CERT_FILE, content: oc },
              { name: CLIENT_KEY_FILE, content: ok },
            ]),
          ),
      );
      const previousRoll = rolls[rolls.length - 1];
      const label = `${j.member.name}-install`;
      const install = new command.remote.Command(
        label,
        {
          connection: connection(host.privateIp),
          create: revision.apply((r) => sshInvocation(renderMemberInstallScript("create", { ...runtime, ...hooks, revision: r }), label)),
          update: revision.apply((r) => sshInvocation(renderMemberInstallScript("update", { ...runtime, ...hooks, revision: r }), label)),
          delete: sshInvocation(renderMemberLeaveScript({ join: j, backupBeforeChange: hooks.backupBeforeChange }), `${j.member.name}-leave`),
          stdin,
          addPreviousOutputInEnv: false,
        },
        {
          parent: this,
          // Bootstrap members install in parallel; a joining member waits for the previous one.
          dependsOn: [...Object.values(masterTrusts), ...uploads, ...backupDeps, ...(j.clusterState === "existing" && previousRoll ? [previousRoll] : [])],
        },
      );
      const rollLabel = `${j.member.name}-roll`;
      const roll = new command.remote.Command(
        rollLabel,
        {
          connection: connection(host.privateIp),
          create: revision.apply((r) => sshInvocation(renderMemberRollScript("create", { join: j, revision: r }), rollLabel)),
          update: revision.apply((r) => sshInvocation(renderMemberRollScript("update", { join: j, revision: r, backupBeforeChange: hooks.backupBeforeChange }), rollLabel)),
          addPreviousOutputInEnv: false,
        },
        { parent: this, dependsOn: [install, ...everyTrust, ...(previousRoll ? [previousRoll] : [])] },
      );
      rolls.push(roll);
    }

    const lastRoll = rolls[rolls.length - 1]!;
    args.workers.forEach((w, i) => {
      const uploaded = upload(w, "raftkvctl.cjs", args.ctlBundlePath, workerTrusts[i]!);
      const revision = pulumi
        .all([args.runtimeRevision, w.cert.certPem, args.clientEndpoint])
        .apply(([rt, cert, endpoint]) => digest([rt, cert, endpoint]));
      const label = `${w.name}-client`;
      const script = (phase: "create" | "update") =>
        pulumi
          .all([revision, args.clientEndpoint])
          .apply(([r, endpoint]) => sshInvocation(renderWorkerInstallScript(phase, { endpoints: [endpoint], uploadDir, revision: r }), label));
      new command.remote.Command(
        label,
        {
          connection: connection(w.privateIp),
          create: script("create"),
          update: script("update"),
          stdin: pulumi.secret(
            pulumi.all([w.cert.certPem, w.cert.keyPem]).apply(([c, k]) =>
              renderFileBundle([
                { name: CLIENT_CERT_FILE, content: c },
                { name: CLIENT_KEY_FILE, content: k },
              ]),
            ),
          ),
          addPreviousOutputInEnv: false,
        },
        // Masters must trust the worker's (possibly new) CA before the worker presents it.
        { parent: this, dependsOn: [uploaded, ...everyTrust] },
      );
    });

    this.ready = lastRoll.stdout;
    this.registerOutputs({ ready: this.ready });
  }

  private host(args: ClusterInstallArgs, name: string): InstallHost {
    const h = args.masters[name];
    if (h === undefined) throw new Error(`no host for member ${name}`);
    return h;
  }
}
