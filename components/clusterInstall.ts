import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { JoinPlan } from "./membership";
import type { InstallBackup } from "./backup";
import { BACKUP } from "./backupHost";
import type { IssuedCert, MemberCerts } from "./pki";
import { CLIENT_CERT_FILE, CLIENT_KEY_FILE, memberCertFileNames, renderFileBundle, renderMemberUnit, type MemberRuntimeOptions } from "./hostFiles";
import {
  renderBackupBeforeReplaceScript,
  renderDataVolumeScript,
  renderMemberGateScript,
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
  /**
   * Jump host, when Pulumi does not run inside the VPC: the stack's own bastion (its host key
   * pinned) or raftkv:bastionHost (whose key the stack does not know).
   */
  bastion?: { host: pulumi.Input<string>; user: string; hostKey?: pulumi.Input<string> };
  /**
   * Outputs of what the SSH path and the members need (every security-group rule, the bastion):
   * every connection carries them, so the engine runs each command after them and deletes them
   * only after the last command (a leave script) ran.
   */
  requires?: pulumi.Input<string>[];
}

/**
 * The SSH connection to a host: gated on `ssh.requires` (e.g. the security-group rules), through the
 * bastion when there is one, each hop checking the host key the stack made for it (`hostKey`, the
 * OpenSSH public key line; the provider refuses a host presenting another key).
 */
export function sshConnection(host: pulumi.Input<string>, ssh: SshSettings, hostKey?: pulumi.Input<string>): command.types.input.remote.ConnectionArgs {
  const requires = ssh.requires ?? [];
  const gated = (h: pulumi.Input<string>): pulumi.Input<string> => (requires.length === 0 ? h : pulumi.all([h, ...requires]).apply(([x]) => x));
  return {
    host: gated(host),
    user: ssh.user,
    privateKey: pulumi.secret(ssh.privateKey),
    ...(hostKey !== undefined ? { hostKey } : {}),
    dialErrorLimit: 40,
    perDialTimeout: 15,
    ...(ssh.bastion !== undefined
      ? {
          proxy: {
            host: gated(ssh.bastion.host),
            user: ssh.bastion.user,
            privateKey: pulumi.secret(ssh.privateKey),
            ...(ssh.bastion.hostKey !== undefined ? { hostKey: ssh.bastion.hostKey } : {}),
            // A bastion created by this `up` may still be booting.
            dialErrorLimit: 40,
            perDialTimeout: 15,
          },
        }
      : {}),
  };
}

export interface InstallHost {
  name: string;
  privateIp: string;
  /** The SSH host key the stack made for it (hostInstance.ts), pinned in every connection to it. */
  hostKey: pulumi.Input<string>;
  /** The instance; commands are replaced with it (triggers) and run after it exists. */
  instance: pulumi.CustomResource & { id: pulumi.Output<string> };
}

/** A master's host: its instance, and its data volume as attached to it. */
export interface MasterHost extends InstallHost {
  instanceType: pulumi.Input<string>;
  volumeId: pulumi.Output<string>;
  volumeGiB: number;
  /** The volume attachment: the volume step runs after it. */
  attachment: pulumi.Resource;
}

export interface ClusterInstallArgs {
  memberCerts: Record<string, MemberCerts>;
  /** The client CA bundle (ca.crt) for every host. */
  caBundlePem: pulumi.Input<string>;
  /** The peer CA bundle (peer-ca.crt) for the masters. */
  peerCaBundlePem: pulumi.Input<string>;
  /** https://<load balancer>:2379, written into the workers' env files. */
  clientEndpoint: pulumi.Input<string>;
  /** Flags and memory of the members. */
  runtime: MemberRuntimeOptions;
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
 * Puts the runtime on the hosts and keeps it there, over SSH. Built one master at a time
 * (addMaster, in member order, interleaved with the instances: see cluster.ts), then the
 * workers (addWorker), then finish():
 *  - volume (per master): the data volume, found by its volume ID, mounted (formatted only if
 *    blank) and grown to its size;
 *  - trust (every host): prepare the host, write the CA bundles, SIGHUP on change;
 *  - install (per member): certificates, bundles, unit, env file; created: start (bootstrap
 *    members without waiting for each other, joining members learner-first, one at a time);
 *    updated: stage certificates and mark a restart or reload pending;
 *  - gate (per master): the next master's instance and volume depend on it; when this host was
 *    replaced, restarted or its volume grown, it waits until the member is a healthy voter and
 *    the cluster healthy. So Pulumi itself changes one master at a time;
 *  - roll (per member, chained, after every host's trust): restart or reload one member at a
 *    time, activating staged certificates, each waiting for the whole cluster to be healthy;
 *  - leave (per joined member, on the first master): removes the member through the members
 *    that stay before its instance goes, highest member first.
 * Every per-host command has the instance ID in its triggers: a replaced host is installed again.
 */
export class ClusterInstall extends pulumi.ComponentResource {
  /** The last member's roll (set by finish()): complete when every member runs the current revision and is healthy. */
  ready!: pulumi.Output<string>;
  private readonly args: ClusterInstallArgs;
  private readonly uploadDir: string;
  private readonly trusts: command.remote.Command[] = [];
  private readonly members: Array<{
    join: JoinPlan;
    host: MasterHost;
    install: command.remote.Command;
    gate: command.remote.Command;
    revision: pulumi.Output<string>;
    backupDeps: pulumi.Resource[];
  }> = [];
  private readonly workers: Array<InstallHost & { cert: IssuedCert; trust: command.remote.Command }> = [];
  private lastLeave: command.remote.Command | undefined;

  constructor(name: string, args: ClusterInstallArgs, opts?: pulumi.ComponentResourceOptions) {
    super("raftkv:install:ClusterInstall", name, {}, opts);
    this.args = args;
    this.uploadDir = args.ssh.user === "root" ? "/root" : `/home/${args.ssh.user}`;
  }

  private connection(host: InstallHost): command.types.input.remote.ConnectionArgs {
    return sshConnection(host.privateIp, this.args.ssh, host.hostKey);
  }

  private trust(host: InstallHost, role: HostRole, after: pulumi.Resource[]): command.remote.Command {
    const files = memberCertFileNames();
    const stdin =
      role === "master"
        ? pulumi.all([this.args.caBundlePem, this.args.peerCaBundlePem]).apply(([ca, peerCa]) =>
            renderFileBundle([
              { name: files.ca, content: ca },
              { name: files.peerCa, content: peerCa },
            ]),
          )
        : pulumi.output(this.args.caBundlePem).apply((pem) => renderFileBundle([{ name: files.ca, content: pem }]));
    const t = new command.remote.Command(
      `${host.name}-trust`,
      {
        connection: this.connection(host),
        create: sshInvocation(renderTrustScript("create", role), `${host.name}-trust`),
        update: sshInvocation(renderTrustScript("update", role), `${host.name}-trust`),
        stdin,
        triggers: [host.instance.id],
      },
      { parent: this, dependsOn: [host.instance, ...after] },
    );
    this.trusts.push(t);
    return t;
  }

  private upload(host: InstallHost, file: string, source: string, after: pulumi.Resource): command.remote.CopyToRemote {
    return new command.remote.CopyToRemote(
      `${host.name}-upload-${file.replace(/\.cjs$/, "")}`,
      { connection: this.connection(host), source: new pulumi.asset.FileAsset(source), remotePath: `${this.uploadDir}/${file}`, triggers: [host.instance.id] },
      { parent: this, dependsOn: [after] },
    );
  }

  /**
   * One master, in member order. Returns the gate the next master's instance and volume depend on.
   * `firstHost` is the first master's host, where the leave of a joined member runs.
   */
  addMaster(j: JoinPlan, host: MasterHost, firstHost: MasterHost): command.remote.Command {
    const args = this.args;
    const name = j.member.name;
    const certs = args.memberCerts[name];
    if (certs === undefined) throw new Error(`no certificates for member ${name}`);
    const conn = this.connection(host);

    const volumeLabel = `${name}-volume`;
    const volumeScript = (phase: "create" | "update") =>
      host.volumeId.apply((id) => sshInvocation(renderDataVolumeScript(phase, { volumeId: id, sizeGiB: host.volumeGiB }), volumeLabel));
    const volume = new command.remote.Command(
      volumeLabel,
      { connection: conn, create: volumeScript("create"), update: volumeScript("update"), triggers: [host.instance.id, host.volumeId] },
      { parent: this, dependsOn: [host.instance, host.attachment] },
    );
    const trust = this.trust(host, "master", [volume]);
    const uploads = [this.upload(host, "raftkv.cjs", args.memberBundlePath, trust), this.upload(host, "raftkvctl.cjs", args.ctlBundlePath, trust)];

    const runtime = { ...args.runtime, ...(args.backup !== undefined ? { backupStateDir: BACKUP.stateDir } : {}), join: j, uploadDir: this.uploadDir };
    // The backup agent's files go on first: a restore and a joining member's pre-change backup use them.
    const backupDeps =
      args.backup?.declare({ parent: this, connection: (h) => this.connection(h), uploadDir: this.uploadDir }, j, host) ?? [];
    const beforeFirstStart = args.backup?.restoreStep(j, this.uploadDir);
    const hooks = { backupBeforeChange: args.backup?.beforeChange === true, ...(beforeFirstStart !== undefined ? { beforeFirstStart } : {}) };
    const revision = pulumi
      .all([args.runtimeRevision, certs.server.certPem, certs.peer.certPem, certs.ops.certPem])
      .apply(([rt, server, peer, ops]) => digest([rt, server, peer, ops, renderMemberUnit(j, runtime)]));
    const names = memberCertFileNames();
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
    const previous = this.members[this.members.length - 1];
    const label = `${name}-install`;
    const install = new command.remote.Command(
      label,
      {
        connection: conn,
        create: revision.apply((r) => sshInvocation(renderMemberInstallScript("create", { ...runtime, ...hooks, revision: r }), label)),
        update: revision.apply((r) => sshInvocation(renderMemberInstallScript("update", { ...runtime, ...hooks, revision: r }), label)),
        stdin,
        triggers: [host.instance.id],
        addPreviousOutputInEnv: false,
      },
      // A joining member joins only after the previous member's install and gate: one membership change at a time.
      { parent: this, dependsOn: [trust, ...uploads, ...backupDeps, ...(j.clusterState === "existing" && previous ? [previous.install, previous.gate] : [])] },
    );

    const gateLabel = `${name}-gate`;
    const fingerprint = pulumi.interpolate`${host.instance.id} ${host.instanceType} ${String(host.volumeGiB)}GiB`;
    const gateScript = (phase: "create" | "update") => fingerprint.apply((f) => sshInvocation(renderMemberGateScript(phase, { join: j, host: f }), gateLabel));
    const gate = new command.remote.Command(
      gateLabel,
      { connection: conn, create: gateScript("create"), update: gateScript("update"), addPreviousOutputInEnv: false },
      // After the host and its volume only, not the install: a new master's gate has nothing to
      // wait for, so the next master boots while this one installs (the first up is not
      // serialized); a changed host's gate waits for its member whatever the install does.
      { parent: this, dependsOn: [volume] },
    );

    if (j.clusterState === "existing") {
      // Runs on the first master, never on the host that goes (it may be dead already).
      const leave = new command.remote.Command(
        `${name}-leave`,
        { connection: this.connection(firstHost), delete: sshInvocation(renderMemberLeaveScript({ join: j, backupBeforeChange: hooks.backupBeforeChange }), `${name}-leave`), addPreviousOutputInEnv: false },
        {
          parent: this,
          dependsOn: [install, host.instance, host.attachment, firstHost.instance, ...this.firstBackupDeps(backupDeps), ...(this.lastLeave ? [this.lastLeave] : [])],
        },
      );
      this.lastLeave = leave;
    }
    this.members.push({ join: j, host, install, gate, revision, backupDeps });
    return gate;
  }

  /** The first master's backup resources: a leave (run there) must go before them. */
  private firstBackupDeps(own: pulumi.Resource[]): pulumi.Resource[] {
    return this.members[0]?.backupDeps ?? own;
  }

  /**
   * Per master, a command whose delete takes a backup before that master's host goes: replaced
   * (the instance ID is in its triggers and its host's, so the engine deletes it before the old
   * instance) or destroyed with the stack (the last backup). It runs on another master, which
   * stays (the first master, or the second for the first), after that host's backup agent is in
   * place and before it is removed.
   */
  private backupsBeforeReplacement(): void {
    for (const [i, m] of this.members.entries()) {
      const runner = this.members[i === 0 ? 1 : 0];
      if (runner === undefined) return;
      const label = `${m.join.member.name}-backup-before-replace`;
      new command.remote.Command(
        label,
        {
          connection: this.connection(runner.host),
          create: `echo ${m.join.member.name}: a backup is taken on ${runner.join.member.name} before this host goes`,
          delete: sshInvocation(renderBackupBeforeReplaceScript({ leaving: m.join.member, runner: runner.join.member }), label),
          triggers: [m.host.instance.id],
          addPreviousOutputInEnv: false,
        },
        // After the attachment: deleted (the backup taken) before the old host is stopped.
        { parent: this, dependsOn: [m.install, m.host.instance, m.host.attachment, runner.host.instance, runner.install, ...runner.backupDeps] },
      );
    }
  }

  addWorker(w: InstallHost & { cert: IssuedCert }): void {
    this.workers.push({ ...w, trust: this.trust(w, "worker", []) });
  }

  /** The rolls and the workers' clients, once every host is declared. */
  finish(): void {
    const args = this.args;
    const everyTrust = [...this.trusts];
    let previousRoll: command.remote.Command | undefined;
    for (const m of this.members) {
      const rollLabel = `${m.join.member.name}-roll`;
      const roll: command.remote.Command = new command.remote.Command(
        rollLabel,
        {
          connection: this.connection(m.host),
          create: m.revision.apply((r) => sshInvocation(renderMemberRollScript("create", { join: m.join, revision: r }), rollLabel)),
          update: m.revision.apply((r) =>
            sshInvocation(renderMemberRollScript("update", { join: m.join, revision: r, backupBeforeChange: args.backup?.beforeChange === true }), rollLabel),
          ),
          addPreviousOutputInEnv: false,
        },
        // After every host trusts the current CAs: a new CA is trusted everywhere before any leaf it signed is presented.
        { parent: this, dependsOn: [m.install, m.gate, ...everyTrust, ...(previousRoll ? [previousRoll] : [])] },
      );
      previousRoll = roll;
    }
    if (previousRoll === undefined) throw new Error("a cluster needs members");
    if (args.backup?.beforeChange === true) this.backupsBeforeReplacement();
    const lastRoll = previousRoll;

    for (const w of this.workers) {
      const uploaded = this.upload(w, "raftkvctl.cjs", args.ctlBundlePath, w.trust);
      const revision = pulumi.all([args.runtimeRevision, w.cert.certPem, args.clientEndpoint]).apply(([rt, cert, endpoint]) => digest([rt, cert, endpoint]));
      const label = `${w.name}-client`;
      const script = (phase: "create" | "update") =>
        pulumi
          .all([revision, args.clientEndpoint])
          .apply(([r, endpoint]) => sshInvocation(renderWorkerInstallScript(phase, { endpoints: [endpoint], uploadDir: this.uploadDir, revision: r }), label));
      new command.remote.Command(
        label,
        {
          connection: this.connection(w),
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
          triggers: [w.instance.id],
          addPreviousOutputInEnv: false,
        },
        // After the last roll, which follows every host's trust: masters trust the worker's
        // (possibly new) CA before the worker presents it.
        { parent: this, dependsOn: [uploaded, lastRoll] },
      );
    }
    this.ready = previousRoll.stdout;
    this.registerOutputs({ ready: this.ready });
  }
}
