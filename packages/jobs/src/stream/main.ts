// Process entry of one stream scorer (package export `@switchyard/jobs/stream-scorer`) with env
// SWITCHYARD_STREAM_SCORER (JSON StreamScorerLaunch), spawned by a node agent for a running stream job.
import { Router } from "@switchyard/client";
import { openBucket, readValue } from "@switchyard/nats";
import {
  clusterNames,
  EXIT_LOAD_FAILED,
  STREAM_SCORER_ENV,
  StreamJob,
  type StreamJobSpec,
  StreamScorerLaunch,
  SwitchyardError,
  streamKeys,
} from "@switchyard/protocol";
import { Registry } from "@switchyard/registry";
import { runChild } from "@switchyard/runtime";
import { reportRunning } from "../worker-status.js";
import { DirSink } from "./dir-sink.js";
import { LandingLoader } from "./landing.js";
import { Lookups } from "./lookups.js";
import { StreamScorer, WindowStateTooLarge } from "./scorer.js";
import { EndpointScoring, ModelScoring, type Scoring } from "./scoring.js";
import type { Sink } from "./sink.js";
import { SubjectSink } from "./subject-sink.js";

runChild({
  env: STREAM_SCORER_ENV,
  launch: StreamScorerLaunch,
  name: (l) => `stream-${l.spec.worker_id}`,
  // `jobId` as batch workers log it, so one query finds every line of a job whatever its kind.
  logFields: (l) => ({ jobId: l.spec.job_id, workerId: l.spec.worker_id }),
  async start(l, nc, log) {
    const names = clusterNames(l.cluster);
    const [jobs, cluster, registry] = await Promise.all([
      openBucket(nc, names, "jobs"),
      openBucket(nc, names, "cluster"),
      Registry.open(nc, { cluster: l.cluster }),
    ]);
    const found = await readValue(jobs, streamKeys.job(l.spec.job_id), StreamJob, "stream job");
    if (!found)
      throw new SwitchyardError("RESOURCE_DOES_NOT_EXIST", `stream job '${l.spec.job_id}' does not exist`);
    const job = found.value;
    const spec = job.request as StreamJobSpec;

    let router: Router | undefined;
    let scoring: Scoring;
    if (spec.model) {
      scoring = await ModelScoring.open({
        registry,
        uri: spec.model,
        cacheDir: l.cache_dir,
        threads: l.spec.threads,
        log,
      });
    } else {
      router = await Router.start(nc, { cluster: l.cluster, logger: log });
      scoring = new EndpointScoring(router, spec.endpoint!, cluster, registry);
    }
    const sink: Sink =
      job.sink.kind === "subject"
        ? new SubjectSink(nc, job.sink.subject, spec.delivery !== "at-least-once")
        : await DirSink.open({ jobs, job, owner: l.spec.worker_id, log });
    const lookups = spec.features?.lookups.length ? new Lookups(nc, spec.features.lookups) : undefined;
    const scorer = new StreamScorer({
      nc,
      names,
      jobs,
      job,
      workerId: l.spec.worker_id,
      scoring,
      sink,
      ...(lookups ? { lookups } : {}),
      log,
    });
    const { done } = await scorer.start();
    const loader = spec.source_dir
      ? new LandingLoader({
          nc,
          names,
          jobs,
          job,
          dir: spec.source_dir,
          ...(spec.format ? { format: spec.format } : {}),
          owner: l.spec.worker_id,
          log,
        })
      : undefined;
    await loader?.start();
    // A batch that failed with acks held (windows, a directory sink): exit, and the restart resumes from the
    // committed state with the unacked inputs redelivered (see scorer.ts).
    done.catch((err: unknown) => {
      if (err instanceof WindowStateTooLarge) {
        // Restarting would only fail the same way: the agent reports the scorer FAILED with this reason.
        log.error({ err: err.message }, err.message);
        process.exit(EXIT_LOAD_FAILED);
      }
      log.error(
        { err: String((err as Error)?.stack ?? err) },
        "scoring failed; exiting to restart from the last commit",
      );
      process.exit(1);
    });
    await reportRunning(cluster, l.spec, l.node_id);
    return {
      async stop() {
        await loader?.stop();
        await scorer.stop();
        await sink.close();
        await scoring.close();
        router?.close();
      },
    };
  },
});
