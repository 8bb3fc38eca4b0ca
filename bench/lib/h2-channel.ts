/**
 * A minimal gRPC unary client straight on node:http2: one TLS HTTP/2 session, requests are
 * pre-framed bytes, responses are drained but not decoded. It exists because the load
 * generator shares two cores with the servers it measures, and @grpc/grpc-js spends several
 * times more CPU per call (measured in bench/README.md) on machinery a benchmark does not need.
 */
import * as http2 from "node:http2";
import type { TlsMaterial } from "./tls-files";

export type UnaryCallback = (err: Error | undefined) => void;

export interface UnaryChannel {
  /** Sends one pre-framed request; the callback gets an error unless grpc-status is 0. */
  call(path: string, frame: Buffer, cb: UnaryCallback, deadlineMs?: number): void;
  close(): void;
}

const { HTTP2_HEADER_METHOD, HTTP2_HEADER_PATH, HTTP2_HEADER_CONTENT_TYPE, HTTP2_HEADER_TE } = http2.constants;

export class GrpcStatusError extends Error {
  constructor(
    readonly code: number,
    detail: string,
  ) {
    super(`grpc status ${code}: ${detail}`);
  }
}

/** Opens a session to `https://host:port` and resolves once TLS and HTTP/2 are up. */
export function openH2Channel(endpoint: string, tls: TlsMaterial): Promise<UnaryChannel> {
  return new Promise((resolve, reject) => {
    // Members are addressed by IP, and an IP is not a valid SNI name; every member certificate
    // also names localhost (memberCertProfiles), so that is the name checked.
    const session = http2.connect(endpoint, {
      ca: tls.ca,
      cert: tls.cert,
      key: tls.key,
      servername: "localhost",
      ALPNProtocols: ["h2"],
    });
    let open = false;
    session.once("connect", () => {
      open = true;
      session.on("error", () => undefined);
      resolve(new H2Channel(session));
    });
    session.once("error", (err) => {
      if (!open) reject(err);
    });
  });
}

class H2Channel implements UnaryChannel {
  constructor(private readonly session: http2.ClientHttp2Session) {}

  call(path: string, frame: Buffer, cb: UnaryCallback, deadlineMs?: number): void {
    let req: http2.ClientHttp2Stream;
    try {
      req = this.session.request({
        [HTTP2_HEADER_METHOD]: "POST",
        [HTTP2_HEADER_PATH]: path,
        [HTTP2_HEADER_CONTENT_TYPE]: "application/grpc",
        [HTTP2_HEADER_TE]: "trailers",
      });
    } catch (err) {
      process.nextTick(cb, err as Error);
      return;
    }
    let status: string | undefined;
    let message = "";
    let done = false;
    const finish = (err: Error | undefined): void => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      cb(err);
    };
    const timer =
      deadlineMs === undefined
        ? undefined
        : setTimeout(() => {
            req.close(http2.constants.NGHTTP2_CANCEL);
            finish(new GrpcStatusError(4, `deadline of ${deadlineMs} ms exceeded`));
          }, deadlineMs);
    const takeStatus = (headers: http2.IncomingHttpHeaders): void => {
      const s = headers["grpc-status"];
      if (typeof s === "string") {
        status = s;
        const m = headers["grpc-message"];
        if (typeof m === "string") message = decodeURIComponent(m);
      }
    };
    // A trailers-only response (the usual shape of an error) carries grpc-status in the headers.
    req.on("response", takeStatus);
    req.on("trailers", takeStatus);
    req.on("error", (err) => finish(err));
    req.on("close", () => {
      if (status === "0") finish(undefined);
      else finish(new GrpcStatusError(Number(status ?? 2), message || `stream closed (rst ${req.rstCode})`));
    });
    req.resume();
    req.end(frame);
  }

  close(): void {
    this.session.close();
  }
}
