// The keep-alive settings of this package's clients of the control plane (the agent's and the
// operator's): connections are kept for the next request, at most as long as the server announces.
//
// Node's agent applies a server's Keep-Alive timeout (less a second) only to lower its own idle
// timeout: an agent without one ignores the announcement and keeps an idle connection until the
// server closes it, so the server closes first and can race the client's next request on that
// connection (ECONNRESET). With an idle timeout of its own, the client closes first, a second before
// the server would, whenever the server announces less: the reference control plane announces 2 s to
// the operator and 1 s to agents, which then close right after each answer, so it holds no connection
// per agent (docs/performance.md, "The control plane at 10,000 agents"). A request in flight is
// bounded by its own deadline, far below this.

/** Options for an https.Agent: kept-alive connections, idle at most a minute or what the server says. */
export const KEEP_ALIVE_AGENT_OPTIONS = { keepAlive: true, timeout: 60_000 } as const;
