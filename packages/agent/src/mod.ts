// @switchyard/agent: the node agent — heartbeats its host's thread budget and supervises one replica
// process per assignment the coordinator writes for it.
export { AGENT_DEFAULTS, NodeAgent, type NodeAgentOptions, REPLICA_ENTRY } from "./agent.js";
