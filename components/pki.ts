import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { clientCertProfile, memberCertProfiles, memberOpsClientName, type CertProfile, type MemberEndpoint } from "./topology";

export interface PkiArgs {
  /** Members in order; their names and addresses go into the certificates. */
  members: MemberEndpoint[];
  /** Extra DNS names per member (its EC2 private DNS name), by member name. */
  memberDnsNames?: Record<string, string[]>;
  /** Worker names; each gets a client certificate. */
  workerNames: string[];
  /** The load balancer's DNS name, so clients may verify a member reached through it. */
  loadBalancerDnsName: pulumi.Input<string>;
  /** Bumping it reissues every leaf certificate (new keys too) and leaves the CAs alone. */
  certGeneration: number;
  /** The client CA that signs client certificates and the members' server certificates. */
  caGeneration: number;
  /** Older client CAs still trusted next to the signing one while members roll to new leaves. */
  retiredCaGenerations: number[];
  /** The peer CA that signs member peer certificates (and nothing else). Default 1. */
  peerCaGeneration?: number;
  /** Older peer CAs still trusted next to the signing one while members roll to new leaves. */
  retiredPeerCaGenerations?: number[];
  validityHours: pulumi.Input<number>;
  earlyRenewalHours: pulumi.Input<number>;
  caValidityHours: pulumi.Input<number>;
}

export interface IssuedCert {
  certPem: pulumi.Output<string>;
  keyPem: pulumi.Output<string>;
}

export interface MemberCerts {
  /** Served on the client port; signed by the client CA. */
  server: IssuedCert;
  /** Presented on the peer port, both ways; signed by the peer CA. */
  peer: IssuedCert;
  /** The client certificate of the tools on the member's host (client.crt); client CA. */
  ops: IssuedCert;
}

interface Ca {
  key: tls.PrivateKey;
  cert: tls.SelfSignedCert;
}

/**
 * The cluster's PKI, two CAs as etcd recommends: a client CA (ca.crt) that signs the members'
 * server certificates and every client certificate (admin, workers, the tools on each master),
 * and a peer CA (peer-ca.crt) that signs only member peer certificates, each naming its member.
 * So no client certificate is ever accepted on a peer port. Each CA has its own generations
 * (one CA resource per trusted generation), rotated independently. All keys ECDSA P-256. Leaf
 * resource names carry the certificate generation, so a bump replaces exactly the leaf keys and
 * certificates; CA names carry only their CA generation.
 */
export class Pki extends pulumi.ComponentResource {
  /** Every trusted client CA certificate, signing CA first: ca.crt on every host and for clients. */
  readonly caBundlePem: pulumi.Output<string>;
  /** The client CA that signs the current client and server leaves. */
  readonly caCertPem: pulumi.Output<string>;
  /** Every trusted peer CA certificate, signing CA first: peer-ca.crt on every master. */
  readonly peerCaBundlePem: pulumi.Output<string>;
  /** The peer CA that signs the current peer leaves. */
  readonly peerCaCertPem: pulumi.Output<string>;
  readonly members: Record<string, MemberCerts>;
  readonly admin: IssuedCert;
  readonly workers: Record<string, IssuedCert>;

  constructor(name: string, args: PkiArgs, opts?: pulumi.ComponentResourceOptions) {
    super("raftkv:pki:Pki", name, {}, opts);

    // The client CA keeps the resource names and subject it had when it was the only CA, so an
    // existing stack keeps it; the peer CA is new.
    const makeCas = (prefix: string, subject: string, signing: number, retired: readonly number[]): Ca[] =>
      [signing, ...retired.filter((g) => g !== signing)].map((g) => {
        const key = new tls.PrivateKey(`${name}-${prefix}-g${g}-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent: this });
        const cert = new tls.SelfSignedCert(
          `${name}-${prefix}-g${g}`,
          {
            privateKeyPem: key.privateKeyPem,
            subject: { commonName: `${subject} generation ${g}`, organization: "raftkv" },
            isCaCertificate: true,
            validityPeriodHours: args.caValidityHours,
            earlyRenewalHours: 0,
            allowedUses: ["cert_signing", "crl_signing", "digital_signature"],
          },
          { parent: this },
        );
        return { key, cert };
      });
    const bundle = (cas: Ca[]): pulumi.Output<string> =>
      pulumi.all(cas.map((c) => c.cert.certPem)).apply((pems) => pems.map((p) => p.trimEnd() + "\n").join(""));
    const clientCas = makeCas("ca", "raftkv CA", args.caGeneration, args.retiredCaGenerations);
    const peerCas = makeCas("peer-ca", "raftkv peer CA", args.peerCaGeneration ?? 1, args.retiredPeerCaGenerations ?? []);
    const clientSigner = clientCas[0]!;
    const peerSigner = peerCas[0]!;
    this.caCertPem = clientSigner.cert.certPem;
    this.caBundlePem = bundle(clientCas);
    this.peerCaCertPem = peerSigner.cert.certPem;
    this.peerCaBundlePem = bundle(peerCas);

    const gen = args.certGeneration;
    const issue = (profile: CertProfile, dnsNames: pulumi.Input<string[]>): IssuedCert => {
      const signer = profile.kind === "peer" ? peerSigner : clientSigner;
      const base = `${name}-${profile.id}-g${gen}`;
      const key = new tls.PrivateKey(`${base}-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent: this });
      const csr = new tls.CertRequest(
        `${base}-csr`,
        {
          privateKeyPem: key.privateKeyPem,
          subject: { commonName: profile.commonName, organization: "raftkv", organizationalUnit: profile.organizationalUnit },
          dnsNames,
          ipAddresses: profile.ipAddresses,
          ...(profile.uris.length > 0 ? { uris: profile.uris } : {}),
        },
        { parent: this },
      );
      const cert = new tls.LocallySignedCert(
        base,
        {
          certRequestPem: csr.certRequestPem,
          caPrivateKeyPem: signer.key.privateKeyPem,
          caCertPem: signer.cert.certPem,
          validityPeriodHours: args.validityHours,
          earlyRenewalHours: args.earlyRenewalHours,
          allowedUses: profile.usages,
        },
        { parent: this },
      );
      return { certPem: cert.certPem, keyPem: pulumi.secret(key.privateKeyPem) };
    };

    this.members = {};
    for (const m of args.members) {
      const own = args.memberDnsNames?.[m.name] ?? [];
      const [serverProfile, peerProfile] = memberCertProfiles(m, { extraDnsNames: own });
      const serverDns = pulumi
        .output(args.loadBalancerDnsName)
        .apply((lb) => memberCertProfiles(m, { extraDnsNames: [...own, lb] })[0]!.dnsNames);
      this.members[m.name] = {
        server: issue(serverProfile!, serverDns),
        peer: issue(peerProfile!, [...peerProfile!.dnsNames, ...own]),
        ops: issue(clientCertProfile(memberOpsClientName(m.name)), []),
      };
    }
    this.admin = issue(clientCertProfile("admin"), []);
    this.workers = {};
    for (const w of args.workerNames) this.workers[w] = issue(clientCertProfile(w), []);

    this.registerOutputs({
      caBundlePem: this.caBundlePem,
      caCertPem: this.caCertPem,
      peerCaBundlePem: this.peerCaBundlePem,
      peerCaCertPem: this.peerCaCertPem,
    });
  }
}
