// The dialing side of a member list query (FrameType.MembersQuery): one TLS connection to a
// member's peer URL with this member's peer certificate, one question, one answer. A member that
// joins an existing cluster learns from it the ID `member add` gave it, as etcd's
// GetClusterFromRemotePeers does over the peer URLs.
import { connect } from "node:tls";
import { parsePeerUrl } from "../../../components/topology";
import type { ReloadingTls } from "../tls/reloading";
import { FrameParser, FrameType, encodeFrame } from "./frame";
import { PROTOCOL_VERSION, encodeMembersQuery } from "./handshake";
import { checkPolicy, socketPeerIdentity, type PeerCertPolicy } from "./peer-identity";

export interface MembersQueryOptions {
  url: string;
  tls: ReloadingTls;
  /** The cluster token, as in the handshake. */
  clusterId: string;
  policy?: PeerCertPolicy;
  timeoutMs: number;
}

/** Resolves with the answering member's JSON member list; rejects with a one-line reason. */
export function queryMembers(o: MembersQueryOptions): Promise<unknown> {
  const { host, port } = parsePeerUrl(o.url);
  return new Promise((resolve, reject) => {
    // TLS checks that the certificate chains to the peer CA and is valid for the URL's host.
    const socket = connect({ host, port, ...o.tls.current().options });
    let settled = false;
    const finish = (err: Error | undefined, value?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(() => finish(new Error(`no member list from ${o.url} within ${o.timeoutMs} ms`)), o.timeoutMs);
    const parser = new FrameParser((type, body) => {
      if (type === FrameType.MembersReply) {
        try {
          finish(undefined, JSON.parse(body.toString("utf8")));
        } catch {
          finish(new Error(`${o.url} answered with a malformed member list`));
        }
      } else if (type === FrameType.Reject) {
        finish(new Error(`${o.url} refused the member list query: ${body.toString("utf8")}`));
      } else {
        finish(new Error(`${o.url} answered with unexpected frame type ${type}`));
      }
    });
    socket.once("secureConnect", () => {
      const identity = socketPeerIdentity(socket);
      const problem = typeof identity === "string" ? identity : checkPolicy(identity, o.policy ?? {});
      if (problem !== undefined) return finish(new Error(`${o.url}: peer certificate refused: ${problem}`));
      socket.write(encodeFrame(FrameType.MembersQuery, encodeMembersQuery({ version: PROTOCOL_VERSION, clusterId: o.clusterId })));
    });
    socket.on("data", (chunk: Buffer) => {
      try {
        parser.push(chunk);
      } catch (e) {
        finish(new Error(`${o.url}: ${(e as Error).message}`));
      }
    });
    socket.on("error", (e) => finish(new Error(`${o.url}: ${e.message}`)));
    socket.on("close", () => finish(new Error(`${o.url} closed the connection without a member list`)));
  });
}
