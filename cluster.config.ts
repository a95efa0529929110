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
  // Served models with scale_to_zero_enabled stop their replicas after this long without a request.
  autoscaler: { scaleToZeroAfter: "30m" },
});
