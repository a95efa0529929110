// What a synchronous call throws, as tests compare it: the catalog code and the message. Anything thrown without
// a string `code` (not one of our errors) is rethrown, so a test never mistakes a crash for the expected error.

/** `[code, message]` of the error `fn` throws; fails when it returns instead. */
export function thrown(fn: () => unknown): [string, string] {
  try {
    fn();
  } catch (e) {
    const code = (e as { code?: unknown })?.code;
    if (typeof code === "string") return [code, (e as Error).message];
    throw e;
  }
  throw new Error("expected an error");
}
