// raftkvctl: etcdctl's v3 commands and output formats, for raftkv and etcd clusters.
import { flushStdio } from "../ctl/output";
import { runCtl } from "../ctl/program";

// grpc-js names the TLS server by the endpoint's IP, which Node reports with a warning on
// every run; the certificate's IP SAN is still verified, so the warning is only noise.
process.removeAllListeners("warning");
process.on("warning", (w) => {
  if (!/TLS ServerName to an IP address/.test(w.message)) process.stderr.write(`warning: ${w.message}\n`);
});

void runCtl(process.argv.slice(2)).then(async (code) => {
  await flushStdio();
  process.exit(code);
});
