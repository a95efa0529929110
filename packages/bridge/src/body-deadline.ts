// The body-read deadline: a client that sends its headers and then trickles the body (slow loris) would hold a
// socket and a buffer for as long as it likes. Fastify's own timeouts do not help here: its connectionTimeout
// is an idle timeout a byte every few seconds keeps resetting, and Node checks its requestTimeout only every
// 30 s. So each request gets a timer; if its body is still incomplete when it fires, the client gets a 408 and
// its connection is closed. A request whose body has arrived is never cut off, however long the model takes.
import { SwitchyardError } from "@switchyard/protocol";
import type { FastifyInstance } from "fastify";
import { errorHeaders } from "./errors.js";

/** How long a client may take to send a request body (headers excluded) by default. */
export const DEFAULT_BODY_TIMEOUT_MS = 30_000;

export function registerBodyDeadline(app: FastifyInstance, timeoutMs: number): void {
  app.addHook("onRequest", (req, reply, done) => {
    // No body, or all of it already read with the headers.
    if (req.raw.complete) return done();
    const timer = setTimeout(() => {
      if (req.raw.complete) return;
      // Requests injected in-process (Fastify's inject) carry a stand-in socket that cannot be destroyed.
      const socket = req.raw.socket as { destroy?: () => void } | undefined;
      const close = () => socket?.destroy?.();
      if (reply.sent) {
        close();
        return;
      }
      const error = new SwitchyardError(
        "REQUEST_TIMEOUT",
        `the request body did not arrive within the bridge's body-read deadline of ${timeoutMs} ms`,
      );
      reply.raw.once("finish", close);
      void reply
        .code(error.status)
        .headers({ ...errorHeaders(error), connection: "close" })
        .send(JSON.stringify(error.toBody()));
    }, timeoutMs);
    // Not cleared when the reply is sent: a client refused early (401) that keeps trickling its body would
    // otherwise hold the keep-alive socket while Node reads the rest; at the deadline it is closed instead.
    const clear = () => clearTimeout(timer);
    req.raw.once("end", clear);
    req.raw.once("close", clear);
    done();
  });
}
