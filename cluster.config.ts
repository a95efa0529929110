// Desired state of a Switchyard cluster: `switchyard up` reads the `cluster` and `autoscaler` sections (flags
// such as --nats-port and SWITCHYARD_* variables override them); `switchyard apply` makes the running cluster
// match the `models`, `endpoints`, `streams` and `schedules` sections (see the README, "Declarative operation").
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
