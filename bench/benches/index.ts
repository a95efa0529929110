import type { Bench } from "../types.js";
import { codecBench } from "./codec.js";

export const benches: Bench[] = [codecBench];
