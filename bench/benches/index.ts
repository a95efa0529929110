import type { Bench } from "../types.js";
import { batchBench } from "./batch.js";
import { codecBench } from "./codec.js";
import { coldstartBench } from "./coldstart.js";
import { realtimeBench } from "./realtime.js";
import { shadowBench } from "./shadow.js";
import { streamBench } from "./stream.js";

export const benches: Bench[] = [
  codecBench,
  realtimeBench,
  batchBench,
  streamBench,
  coldstartBench,
  shadowBench,
];
