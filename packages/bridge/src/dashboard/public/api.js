// The bridge's JSON API as the page calls it: the token the user signed in with is kept in sessionStorage (this
// tab only, gone when it closes) and sent as `Authorization: Bearer`, never in a URL.
const TOKEN_KEY = "switchyard.token";

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** A 401 or 403: the page goes back to the sign-in form with the bridge's message. */
export class AuthError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Any other failed call: shown in the section that made it, the rest of the page keeps working. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** GET a JSON resource of the bridge. */
export async function getJson(path) {
  const headers = { accept: "application/json" };
  const t = token.get();
  if (t) headers.authorization = `Bearer ${t}`;
  const res = await fetch(path, { headers, cache: "no-store" });
  const body = await res.json().catch(() => undefined);
  const message = body?.message ?? `HTTP ${res.status}`;
  if (res.status === 401 || res.status === 403) throw new AuthError(res.status, message);
  if (!res.ok) throw new ApiError(res.status, body?.error_code, message);
  return body;
}
