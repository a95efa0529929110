// Asks a nats-server, over the raw client protocol, whether JetStream answers requests yet.
// It must never depend on a NATS client library (this package sits below them) nor leave a socket open.

import { connect, type Socket } from "node:net";

export interface ProbeAuth {
  user?: string;
  password?: string;
  token?: string;
}

/** What one probe learned: ready, or why not (retry later), or a reason retrying cannot fix. */
export type ProbeResult = { ready: true } | { ready: false; reason: string; fatal?: boolean };

const INBOX = "_INBOX.switchyard_natsd_probe";

/**
 * One attempt: TCP connect, CONNECT (+ PING to learn whether we were accepted), then a `$JS.API.INFO`
 * request. A clustered JetStream answers it with an error (or not at all) until the meta group has a
 * leader, which is exactly the moment clustered streams become creatable.
 */
export function probeJetStream(
  host: string,
  port: number,
  auth: ProbeAuth,
  timeoutMs: number,
): Promise<ProbeResult> {
  return new Promise((resolvePromise) => {
    let socket: Socket | undefined;
    let buffer = Buffer.alloc(0);
    let stage: "info" | "pong" | "msg" = "info";
    let settled = false;

    const finish = (result: ProbeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket?.destroy();
      resolvePromise(result);
    };
    const timer = setTimeout(
      () => finish({ ready: false, reason: `no answer at stage "${stage}" within ${timeoutMs} ms` }),
      timeoutMs,
    );

    socket = connect({ host, port });
    socket.on("error", (err) => finish({ ready: false, reason: err.message }));
    socket.on("close", () => finish({ ready: false, reason: `connection closed at stage "${stage}"` }));
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const eol = buffer.indexOf("\r\n");
        if (eol < 0) return;
        const line = buffer.subarray(0, eol).toString("utf8");
        if (line.startsWith("MSG ")) {
          // MSG <subject> <sid> [reply-to] <#bytes>\r\n<payload>\r\n
          const size = Number(line.split(" ").at(-1));
          if (buffer.length < eol + 2 + size + 2) return;
          const payload = buffer.subarray(eol + 2, eol + 2 + size).toString("utf8");
          buffer = buffer.subarray(eol + 2 + size + 2);
          finish(readInfoResponse(payload));
          return;
        }
        buffer = buffer.subarray(eol + 2);
        if (line.startsWith("-ERR")) {
          const fatal = /authori[sz]ation|authentication/i.test(line);
          finish({ ready: false, reason: `server said ${line}`, fatal });
          return;
        }
        if (line.startsWith("PING")) {
          socket?.write("PONG\r\n");
        } else if (stage === "info" && line.startsWith("INFO ")) {
          let jetstream = false;
          try {
            jetstream = JSON.parse(line.slice(5)).jetstream === true;
          } catch {
            // a malformed INFO is treated like "no JetStream yet"
          }
          if (!jetstream) {
            finish({ ready: false, reason: "server INFO does not announce JetStream yet" });
            return;
          }
          const connectOptions = {
            verbose: false,
            pedantic: false,
            lang: "switchyard-natsd-probe",
            version: "0",
            protocol: 1,
            ...(auth.user !== undefined ? { user: auth.user, pass: auth.password ?? "" } : {}),
            ...(auth.token !== undefined ? { auth_token: auth.token } : {}),
          };
          stage = "pong";
          socket?.write(`CONNECT ${JSON.stringify(connectOptions)}\r\nPING\r\n`);
        } else if (stage === "pong" && line.startsWith("PONG")) {
          stage = "msg";
          socket?.write(`SUB ${INBOX} 1\r\nPUB $JS.API.INFO ${INBOX} 0\r\n\r\n`);
        }
      }
    });
  });
}

function readInfoResponse(payload: string): ProbeResult {
  try {
    const body = JSON.parse(payload) as { error?: { code?: number; description?: string } };
    if (body.error)
      return { ready: false, reason: `JetStream: ${body.error.description ?? body.error.code}` };
    return { ready: true };
  } catch {
    return { ready: false, reason: `unreadable $JS.API.INFO answer: ${payload.slice(0, 200)}` };
  }
}
