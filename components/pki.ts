import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { clientCertProfile, memberCertProfiles, type CertProfile, type MemberEndpoint } from "./topology";

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
  /** The CA that signs leaves. */
  caGeneration: number;
  /** Older CAs still trusted next to the signing one while members roll to new leaves. */
  retiredCaGenerations: number[];
  validityHours: pulumi.Input<number>;
  earlyRenewalHours: pulumi.Input<number>;
  caValidityHours: pulumi.Input<number>;
}

export interface IssuedCert {
  certPem: pulumi.Output<string>;
  keyPem: pulumi.Output<string>;
}

export interface MemberCerts {
  server: IssuedCert;
  peer: IssuedCert;
}

/**
 * The cluster's PKI: CAs (one per trusted generation), a server and a peer certificate per
 * member, an admin client certificate and one client certificate per worker. All keys ECDSA
 * P-256. Leaf resource names carry the certificate generation, so a bump replaces exactly the
 * leaf keys and certificates; CA names carry only the CA generation.
 */
export class Pki extends pulumi.ComponentResource {
  /** Every trusted CA certificate, signing CA first: the content of ca.crt on every host. */
  readonly caBundlePem: pulumi.Output<string>;
  /** The CA that signs the current leaves. */
  readonly caCertPem: pulumi.Output<string>;
  readonly members: Record<string, MemberCerts>;
  readonly admin: IssuedCert;
  readonly workers: Record<string, IssuedCert>;

  constructor(name: string, args: PkiArgs, opts?: pulumi.ComponentResourceOptions) {
    super("raftkv:pki:Pki", name, {}, opts);

    const generations = [args.caGeneration, ...args.retiredCaGenerations.filter((g) => g !== args.caGeneration)];
    const cas = generations.map((g) => {
      const key = new tls.PrivateKey(`${name}-ca-g${g}-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent: this });
      const cert = new tls.SelfSignedCert(
        `${name}-ca-g${g}`,
        {
          privateKeyPem: key.privateKeyPem,
          subject: { commonName: `raftkv CA generation ${g}`, organization: "raftkv" },
          isCaCertificate: true,
          validityPeriodHours: args.caValidityHours,
          earlyRenewalHours: 0,
          allowedUses: ["cert_signing", "crl_signing", "digital_signature"],
        },
        { parent: this },
      );
      return { key, cert };
    });
    const signer = cas[0]!;
    this.caCertPem = signer.cert.certPem;
    this.caBundlePem = pulumi.all(cas.map((c) => c.cert.certPem)).apply((pems) => pems.map((p) => p.trimEnd() + "\n").join(""));

    const gen = args.certGeneration;
    const issue = (profile: CertProfile, dnsNames: pulumi.Input<string[]>): IssuedCert => {
      const base = `${name}-${profile.id}-g${gen}`;
      const key = new tls.PrivateKey(`${base}-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent: this });
      const csr = new tls.CertRequest(
        `${base}-csr`,
        {
          privateKeyPem: key.privateKeyPem,
          subject: { commonName: profile.commonName, organization: "raftkv" },
          dnsNames,
          ipAddresses: profile.ipAddresses,
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
      };
    }
    this.admin = issue(clientCertProfile("admin"), []);
    this.workers = {};
    for (const w of args.workerNames) this.workers[w] = issue(clientCertProfile(w), []);

    this.registerOutputs({ caBundlePem: this.caBundlePem, caCertPem: this.caCertPem });
  }
}
