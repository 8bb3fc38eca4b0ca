import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { DEFAULT_CLIENT_PORT, memberName } from "./topology";
import { masterEndpoints, placeMasters, placeWorkers, privateDnsName, type HostPlacement } from "./addressing";
import { joinPlan } from "./membership";
import type { ClusterSettings } from "./settings";
import { Network, bastionPlacement } from "./network";
import { Bastion } from "./bastion";
import { ClientLoadBalancer } from "./loadBalancer";
import { Pki } from "./pki";
import { Masters } from "./masters";
import { Workers } from "./workers";
import { ClusterInstall, type MasterHost, type SshSettings } from "./clusterInstall";
import { PinnedImages } from "./image";
import { BackupStorage, clusterBackup } from "./backup";
import type { BackupSettings } from "./backupSettings";
import { ClusterAuth, planClusterAuth, possibleMemberNames, type AuthSettings } from "./auth";

export interface RaftkvClusterArgs {
  settings: ClusterSettings;
  region: string;
  /** Private half of settings.sshPublicKey; only ever handled as a secret. */
  sshPrivateKey: pulumi.Input<string>;
  memberBundlePath?: string;
  ctlBundlePath?: string;
  /** Digest of the bundles' content (see index.ts); a new build rolls the members. */
  runtimeRevision: pulumi.Input<string>;
  tags?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** Scheduled backups, restore and volume retention (components/backupSettings.ts); none when undefined. */
  backup?: { settings: BackupSettings; s3SecretAccessKey?: pulumi.Input<string> };
  /** Users, roles and auth enable once the cluster is up (components/auth.ts); none when undefined. */
  auth?: AuthSettings;
}

export interface MemberSummary {
  name: string;
  privateIp: string;
  availabilityZone: string;
}

/** The whole deployment: network, load balancer, PKI, masters, workers and their install. */
export class RaftkvCluster extends pulumi.ComponentResource {
  readonly clientEndpoint: pulumi.Output<string>;
  readonly members: MemberSummary[];
  /** ca.crt for clients: every trusted CA, signing CA first. */
  readonly caCertPem: pulumi.Output<string>;
  readonly adminCertPem: pulumi.Output<string>;
  readonly adminKeyPem: pulumi.Output<string>;
  /** Fetches the admin credentials from the stack into files (run where `pulumi` works). */
  readonly credentialsCommand: string;
  /** An etcdctl command line that works once the credentials files exist. */
  readonly etcdctlCommand: pulumi.Output<string>;
  readonly ready: pulumi.Output<string>;
  /** The jump host Pulumi's SSH goes through (the stack's bastion or raftkv:bastionHost); undefined when direct. */
  readonly bastionAddress: pulumi.Output<string> | undefined;
  /** The bucket the backups go to; undefined when scheduled backups are off. */
  readonly backupBucket: pulumi.Output<string> | undefined;

  constructor(name: string, args: RaftkvClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("raftkv:index:Cluster", name, {}, opts);
    const s = args.settings;
    const parent = { parent: this };
    const tags = pulumi.output(args.tags ?? {}).apply((t) => ({ ...t, "raftkv:cluster": name }));
    const workerNames = Array.from({ length: s.workers }, (_, i) => `${s.namePrefix}-worker-${i + 1}`);
    // Planned before any resource exists (a bad raftkv:authPrefixes fails at once), for every
    // member name the cluster can have, so a scale-up never waits for the bootstrap.
    const authPlan = args.auth === undefined ? undefined : planClusterAuth({ members: possibleMemberNames(s.namePrefix), workers: workerNames, prefixes: args.auth.prefixes });

    const network = new Network(
      `${name}-net`,
      {
        network: s.network,
        adminCidrs: s.adminCidrs,
        ...(s.bastionSecurityGroupId !== undefined ? { bastionSecurityGroupId: s.bastionSecurityGroupId } : {}),
        createBastionGroup: s.sshPath.kind === "create",
        tags,
      },
      parent,
    );
    const masterNames = Array.from({ length: s.masters }, (_, i) => memberName(i, s.namePrefix));
    const masterPlacements = placeMasters(masterNames, network.subnets);
    const members = masterEndpoints(masterPlacements, s.namePrefix);
    const joins = joinPlan(members);
    const workerPlacements: HostPlacement[] = placeWorkers(workerNames, network.subnets);

    const lb = new ClientLoadBalancer(
      `${name}-lb`,
      { vpcId: network.vpcId, subnets: network.subnets, subnetIds: network.subnetIds, securityGroupId: network.loadBalancerSecurityGroupId, tags },
      parent,
    );

    const pki = new Pki(
      `${name}-pki`,
      {
        members,
        memberDnsNames: Object.fromEntries(masterPlacements.map((p) => [p.name, [privateDnsName(p.privateIp, args.region)]])),
        workerNames: workerPlacements.map((w) => w.name),
        loadBalancerDnsName: lb.dnsName,
        certGeneration: s.certGeneration,
        caGeneration: s.caGeneration,
        retiredCaGenerations: s.retiredCaGenerations,
        peerCaGeneration: s.peerCaGeneration,
        retiredPeerCaGenerations: s.retiredPeerCaGenerations,
        validityHours: s.certValidityHours,
        earlyRenewalHours: s.certEarlyRenewalHours,
        caValidityHours: s.caValidityHours,
      },
      parent,
    );

    const keyPair = new aws.ec2.KeyPair(`${name}-ssh`, { publicKey: s.sshPublicKey, tags }, parent);
    const images = new PinnedImages(
      `${name}-image`,
      {
        archs: [s.arch.master, ...(s.workers > 0 ? [s.arch.worker] : []), ...(s.sshPath.kind === "create" ? [s.arch.bastion] : [])],
        ...(s.amiId !== undefined ? { configured: s.amiId } : {}),
      },
      parent,
    );

    // The SSH path: through the bastion this stack creates (new VPC: every host is private),
    // through raftkv:bastionHost, or direct (existing VPC, Pulumi inside it).
    let bastion: SshSettings["bastion"];
    if (s.sshPath.kind === "create") {
      if (s.network.kind !== "new" || network.publicSubnetId === undefined || network.createdBastionSecurityGroupId === undefined) {
        throw new Error("a bastion is created only in a new VPC");
      }
      const b = new Bastion(
        `${name}-jump`,
        {
          placement: bastionPlacement(s.network.vpcCidr, s.network.subnets[0]!.availabilityZone, s.namePrefix),
          publicSubnetId: network.publicSubnetId,
          securityGroupId: network.createdBastionSecurityGroupId,
          amiId: images.image(s.arch.bastion),
          instanceType: s.sshPath.instanceType,
          keyName: keyPair.keyName,
          tags,
        },
        parent,
      );
      bastion = { host: b.publicIp, user: s.sshUser, hostKey: b.hostKey };
    } else if (s.sshPath.kind === "configured") {
      bastion = { host: s.sshPath.host, user: s.sshPath.user };
    }
    this.bastionAddress = bastion === undefined ? undefined : pulumi.output(bastion.host);

    const backupStorage = args.backup !== undefined ? new BackupStorage(`${name}-backup`, { settings: args.backup.settings, tags }, parent) : undefined;
    this.backupBucket = backupStorage?.bucketName;
    this.clientEndpoint = pulumi.interpolate`https://${lb.dnsName}:${DEFAULT_CLIENT_PORT}`;
    const ssh = {
      user: s.sshUser,
      privateKey: args.sshPrivateKey,
      ...(bastion !== undefined ? { bastion } : {}),
      requires: network.rules.map((r) => r.urn),
    };
    const install = new ClusterInstall(
      `${name}-install`,
      {
        memberCerts: pki.members,
        caBundlePem: pki.caBundlePem,
        peerCaBundlePem: pki.peerCaBundlePem,
        clientEndpoint: this.clientEndpoint,
        runtime: {
          clusterToken: s.clusterToken,
          heapMiB: s.memberBudget.heapMiB,
          quotaBackendBytes: s.memberBudget.quotaBackendBytes,
          ...(s.heartbeatIntervalMs !== undefined ? { heartbeatIntervalMs: s.heartbeatIntervalMs } : {}),
          ...(s.electionTimeoutMs !== undefined ? { electionTimeoutMs: s.electionTimeoutMs } : {}),
        },
        ssh,
        memberBundlePath: args.memberBundlePath ?? "dist/raftkv.cjs",
        ctlBundlePath: args.ctlBundlePath ?? "dist/raftkvctl.cjs",
        runtimeRevision: args.runtimeRevision,
        ...(args.backup !== undefined && backupStorage !== undefined
          ? {
              backup: clusterBackup({
                settings: args.backup.settings,
                region: args.region,
                clusterToken: s.clusterToken,
                storage: backupStorage,
                ...(args.backup.s3SecretAccessKey !== undefined ? { s3SecretAccessKey: args.backup.s3SecretAccessKey } : {}),
              }),
            }
          : {}),
      },
      parent,
    );
    const masters = new Masters(
      `${name}-masters`,
      {
        subnetIds: network.subnetIds,
        securityGroupId: network.mastersSecurityGroupId,
        amiId: images.image(s.arch.master),
        instanceType: s.masterInstanceType,
        keyName: keyPair.keyName,
        dataVolumeGiB: s.dataVolumeGiB,
        targetGroupArn: lb.targetGroupArn,
        networkReady: network.egressReady,
        tags,
        ...(backupStorage?.instanceProfileName !== undefined ? { iamInstanceProfile: backupStorage.instanceProfileName } : {}),
        retainDataVolumes: args.backup?.settings.retainDataVolumes === true,
      },
      parent,
    );
    // One master at a time: each master's instance and volume depend on the previous master's
    // gate, which (when that master changed) waits until it is a healthy voter again.
    let gate: pulumi.Resource | undefined;
    let first: MasterHost | undefined;
    for (const [i, p] of masterPlacements.entries()) {
      const host = masters.add(p, gate);
      first ??= host;
      gate = install.addMaster(joins[i]!, host, first);
    }
    masters.done();
    const workers = new Workers(
      `${name}-workers`,
      {
        placements: workerPlacements,
        subnetIds: network.subnetIds,
        securityGroupId: network.workersSecurityGroupId,
        amiId: images.image(s.arch.worker),
        instanceType: s.workerInstanceType,
        keyName: keyPair.keyName,
        networkReady: network.egressReady,
        tags,
      },
      parent,
    );
    for (const w of workerPlacements) {
      install.addWorker({ name: w.name, privateIp: w.privateIp, hostKey: workers.hostKeys[w.name]!, instance: workers.instances[w.name]!, cert: pki.workers[w.name]! });
    }
    install.finish();
    if (authPlan !== undefined) new ClusterAuth(`${name}-auth`, { plan: authPlan, host: first!.privateIp, hostKey: first!.hostKey, ssh, ready: install.ready }, parent);

    this.members = masterPlacements.map((p) => ({ name: p.name, privateIp: p.privateIp, availabilityZone: p.availabilityZone }));
    this.caCertPem = pki.caBundlePem;
    this.adminCertPem = pki.admin.certPem;
    this.adminKeyPem = pki.admin.keyPem;
    this.ready = install.ready;
    this.credentialsCommand = [
      "pulumi stack output caCertPem > raftkv-ca.crt",
      "pulumi stack output adminCertPem > raftkv-admin.crt",
      "(umask 077 && pulumi stack output --show-secrets adminKeyPem > raftkv-admin.key)",
    ].join(" && ");
    this.etcdctlCommand = pulumi.interpolate`ETCDCTL_API=3 etcdctl --endpoints=${this.clientEndpoint} --cacert=raftkv-ca.crt --cert=raftkv-admin.crt --key=raftkv-admin.key member list -w table`;

    this.registerOutputs({
      backupBucket: this.backupBucket,
      bastionAddress: this.bastionAddress,
      clientEndpoint: this.clientEndpoint,
      members: this.members,
      caCertPem: this.caCertPem,
      adminCertPem: this.adminCertPem,
      adminKeyPem: this.adminKeyPem,
      etcdctlCommand: this.etcdctlCommand,
      credentialsCommand: this.credentialsCommand,
      ready: this.ready,
    });
  }
}
