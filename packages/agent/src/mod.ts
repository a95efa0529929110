// @switchyard/agent: the node agent — heartbeats its host's thread budget and supervises one replica
// process per assignment the coordinator writes for it.
export { AGENT_DEFAULTS, defaultReplicaEntry, NodeAgent, type NodeAgentOptions } from "./agent.js";
