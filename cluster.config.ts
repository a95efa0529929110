// Desired state of a Switchyard cluster, applied by `switchyard up` (and, later, `switchyard apply`).
// Flags (--nats-port, --data-dir …) and SWITCHYARD_* variables override what is set here.
import { defineConfig } from "@switchyard/cli";

export default defineConfig({
  cluster: {
    name: "sy",
    dataDir: ".switchyard",
    host: "127.0.0.1",
    natsPort: 4222,
    httpPort: 8080,
    syncAlways: false,
  },
});
