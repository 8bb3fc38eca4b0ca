export { createCa, issueCert, type CertificateAuthority, type IssuedCert } from "./issue";
export {
  writeClusterPki,
  DEFAULT_CA_VALIDITY_DAYS,
  DEFAULT_CERT_VALIDITY_DAYS,
  type ClusterPki,
  type ClusterPkiOptions,
  type ClientCertPaths,
} from "./cluster";
