/**
 * gRPC server credentials that follow a ReloadingTls: when the certificate, key or CA bundle
 * changes on disk (or on SIGHUP), new client connections get the new material, with no restart.
 */
import * as grpc from "@grpc/grpc-js";
import type {
  CaCertificateUpdateListener,
  CertificateProvider,
  IdentityCertificateUpdateListener,
} from "@grpc/grpc-js/build/src/certificate-provider";
import type { ReloadingTls } from "../tls";
import type { TlsMaterial } from "../tls";

class ReloadingProvider implements CertificateProvider {
  private readonly ca = new Set<CaCertificateUpdateListener>();
  private readonly identity = new Set<IdentityCertificateUpdateListener>();

  constructor(private readonly tls: ReloadingTls) {
    tls.onChange((m) => this.publish(m));
  }

  private publish(m: TlsMaterial): void {
    for (const l of this.ca) l({ caCertificate: Buffer.from(m.options.ca.join("\n")) });
    for (const l of this.identity) l({ certificate: Buffer.from(m.options.cert), privateKey: Buffer.from(m.options.key) });
  }

  // grpc-js registers its own watcher only after adding these listeners, so the current
  // material must be delivered asynchronously or the first update is lost.
  addCaCertificateListener(l: CaCertificateUpdateListener): void {
    this.ca.add(l);
    process.nextTick(() => l({ caCertificate: Buffer.from(this.tls.current().options.ca.join("\n")) }));
  }
  removeCaCertificateListener(l: CaCertificateUpdateListener): void {
    this.ca.delete(l);
  }
  addIdentityCertificateListener(l: IdentityCertificateUpdateListener): void {
    this.identity.add(l);
    process.nextTick(() => {
      const m = this.tls.current();
      l({ certificate: Buffer.from(m.options.cert), privateKey: Buffer.from(m.options.key) });
    });
  }
  removeIdentityCertificateListener(l: IdentityCertificateUpdateListener): void {
    this.identity.delete(l);
  }
}

export function reloadingServerCredentials(tls: ReloadingTls, requireClientCert: boolean): grpc.ServerCredentials {
  const p = new ReloadingProvider(tls);
  // The same provider serves both roles, which also sidesteps the swapped parameter names of
  // createCertificateProviderServerCredentials in grpc-js 1.14.
  return grpc.experimental.createCertificateProviderServerCredentials(p, requireClientCert ? p : null, requireClientCert);
}
