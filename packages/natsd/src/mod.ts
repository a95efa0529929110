// Public entry of @switchyard/natsd: finding a nats-server ≥ 2.10 and running it as a child process, and the
// Debian package fetch it uses (the container tier takes its Compose plugin the same way).
// It must never export the probe internals; callers talk to servers with a real NATS client.

export { DEFAULT_APT_DIR, readAptSources, trixieSourceLines } from "./apt-sources.js";
export {
  type NatsPermissions,
  type NatsUser,
  reloadNatsServer,
  renderAuthorization,
  type SubjectRules,
  writeAuthorizationFile,
} from "./authorization.js";
export { type DebianPackageOptions, withDebianPackage } from "./debian-package.js";
export {
  type DownloadOptions,
  defaultNatsServerCacheDir,
  downloadDebianNatsServer,
  type FindNatsServerOptions,
  findNatsServer,
  findRepoRoot,
  NATS_SERVER_ENV,
  NatsServerNotFoundError,
  natsServerVersion,
} from "./provision.js";
export {
  goMaxProcs,
  type MetaGroup,
  type NatsCluster,
  NatsServer,
  type NatsServerOptions,
  natsServerDefaults,
  type StopOptions,
  startCluster,
} from "./server.js";
export {
  compareNatsServerVersions,
  isSupportedNatsServerVersion,
  MIN_NATS_SERVER_VERSION,
  type NatsServerVersion,
  parseNatsServerVersion,
} from "./version.js";
