// Serves the dashboard: a fixed set of static files (the page, its modules, uPlot) read once into memory. They
// are public — the page asks for a token and sends it on its API calls — so only these exact paths skip auth.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";

interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
}

/** The page's own files, from src/dashboard/public (this module runs from src/ in tests and dist/ when built). */
const PUBLIC_DIR = fileURLToPath(new URL("../../src/dashboard/public/", import.meta.url));
const require = createRequire(import.meta.url);

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
};

/** URL path → file on disk. uPlot comes from its npm package, pinned in package.json: no CDN. */
const FILES: Record<string, string> = {
  "/": `${PUBLIC_DIR}index.html`,
  "/dashboard/app.js": `${PUBLIC_DIR}app.js`,
  "/dashboard/accuracy.js": `${PUBLIC_DIR}accuracy.js`,
  "/dashboard/api.js": `${PUBLIC_DIR}api.js`,
  "/dashboard/canary.js": `${PUBLIC_DIR}canary.js`,
  "/dashboard/charts.js": `${PUBLIC_DIR}charts.js`,
  "/dashboard/format.js": `${PUBLIC_DIR}format.js`,
  "/dashboard/shadow.js": `${PUBLIC_DIR}shadow.js`,
  "/dashboard/style.css": `${PUBLIC_DIR}style.css`,
  "/dashboard/uPlot.esm.js": require.resolve("uplot/dist/uPlot.esm.js"),
  "/dashboard/uPlot.min.css": require.resolve("uplot/dist/uPlot.min.css"),
};

/** The paths the auth hook lets through without a token: exactly the dashboard's files. */
export const DASHBOARD_PATHS: ReadonlySet<string> = new Set(Object.keys(FILES));

/**
 * Same-origin everything: the page loads nothing from elsewhere and calls only this bridge. uPlot sizes its
 * elements through the CSSOM, which a style-src policy does not restrict.
 */
const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

function load(path: string): StaticFile {
  const body = readFileSync(path);
  const ext = path.slice(path.lastIndexOf(".") + 1);
  const type = TYPES[ext];
  if (!type) throw new Error(`dashboard file ${path}: no content type for .${ext}`);
  return { body, type, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"` };
}

/** Registers `GET /` and the dashboard's assets. */
export function registerDashboard(app: FastifyInstance): void {
  for (const [url, path] of Object.entries(FILES)) {
    const file = load(path);
    app.get(url, (req, reply) => {
      // Revalidated on every load (no-cache), answered 304 while unchanged: a new bridge's page is never stale.
      void reply.headers({ ...SECURITY_HEADERS, "cache-control": "no-cache", etag: file.etag });
      if (req.headers["if-none-match"] === file.etag) return reply.code(304).send();
      return reply.type(file.type).send(file.body);
    });
  }
}
