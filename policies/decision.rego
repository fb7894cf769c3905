# The decision Tollgate enforces (entrypoint tollgate/authz/decision): opa-envoy-plugin's
# result object plus `reasons`. Every scenario file adds sentences to `deny`; a request is
# allowed only when none applies.
package tollgate.authz

# Reached only if evaluation cannot build either object below, so it must deny.
# Denies carry no http_status: the sidecar's default (403) applies, and a denied MCP
# JSON-RPC call is answered with a JSON-RPC error instead of an HTTP failure.
default decision := {
	"allowed": false,
	"reasons": ["policy reached no decision"],
}

# An allowed call also names what it consumes (budgets, rates) and whether a human must
# approve it (approval): governance.rego; absent when nothing applies.
decision := object.union(
	{
		"allowed": true,
		"reasons": [],
		"headers": {"x-tollgate-agent": agent_id},
		"request_headers_to_remove": ["x-tollgate-debug"],
	},
	governance,
) if {
	count(deny) == 0
}

decision := {
	"allowed": false,
	"reasons": sort(deny),
} if {
	count(deny) > 0
}

# allow is the decision as a boolean (entrypoint tollgate/authz/allow), for callers such as
# opa-envoy-plugin configured with a boolean path.
allow := decision.allowed
