import * as net from "node:net";

/**
 * A TCP port on 127.0.0.1 that was free a moment ago. The OS picks it, so parallel test
 * files rarely collide; a caller that loses the race sees EADDRINUSE, never a silent clash.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") {
        srv.close();
        reject(new Error("no port assigned"));
        return;
      }
      const port = addr.port;
      srv.close(() => resolve(port));
    });
  });
}
