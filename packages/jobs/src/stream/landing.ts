// LOCAL PLACEHOLDER (not committed)
export class LandingLoader {
  constructor(_o: unknown) {
    throw new Error("landing not merged yet");
  }
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
}
