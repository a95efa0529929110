// Stream jobs from the SDK: the management API's `streams.*` operations, with the same bodies as
// `POST /api/2.0/switchyard/streams` and `switchyard stream create`. The coordinator validates and answers.
import type { NatsConnection } from "@nats-io/transport-node";
import type { ClusterNames, StreamJobRequest, StreamJobView } from "@switchyard/protocol";
import { callApi } from "./management.js";

export class StreamsApi {
  constructor(
    private readonly nc: NatsConnection,
    readonly names: ClusterNames,
  ) {}

  /** The coordinator validates the request: a bad field is INVALID_PARAMETER_VALUE naming it. */
  create(request: StreamJobRequest): Promise<StreamJobView> {
    return callApi(this.nc, this.names, "streams.create", request) as Promise<StreamJobView>;
  }

  get(name: string): Promise<StreamJobView> {
    return callApi(this.nc, this.names, "streams.get", { name }) as Promise<StreamJobView>;
  }

  async list(): Promise<StreamJobView[]> {
    const reply = (await callApi(this.nc, this.names, "streams.list", {})) as { streams?: StreamJobView[] };
    return reply.streams ?? [];
  }

  /** Stops the scorers; the consumer keeps its ack floor, so `start` resumes where the job stopped. */
  stop(name: string): Promise<StreamJobView> {
    return callApi(this.nc, this.names, "streams.stop", { name }) as Promise<StreamJobView>;
  }

  start(name: string): Promise<StreamJobView> {
    return callApi(this.nc, this.names, "streams.start", { name }) as Promise<StreamJobView>;
  }

  async delete(name: string): Promise<void> {
    await callApi(this.nc, this.names, "streams.delete", { name });
  }
}
