# Zero trust: only registered agents reach registered destinations, and each agent only
# the destinations its role lists in data.tollgate.role_destinations. Everything else is
# denied by default: allow is the absence of any deny reason (see decision.rego).
package tollgate.authz

deny contains "request names no agent" if not agent_id

deny contains sprintf("agent %s is not registered", [agent_id]) if not agent

# The role in the input is what the sidecar was configured with (empty: not claimed); a
# mismatch with the registry means the config and the policy data disagree about who this
# agent is.
deny contains sprintf("agent %s claims role %v but is registered with role %s", [agent_id, claimed, role]) if {
	claimed := input.agent.role
	claimed != ""
	claimed != role
}

deny contains "request has no destination host" if host == ""

deny contains sprintf("destination %s is not registered", [host]) if {
	host != ""
	not registered_destination
}

deny contains sprintf("role %s may not reach %s", [role, host]) if {
	registered_destination
	not role_destination
}

# Dot segments would let "/v1/x/../refunds" reach an endpoint without matching its checks;
# Tollgate normalises paths, so one here means the input was built some other way.
deny contains sprintf("path %s contains a dot segment", [object.get(http_request, "path", "")]) if {
	some segment in raw_path_segments
	segment in {".", ".."}
}

registered_destination if is_object(data.tollgate.destinations[host])

# Negations go through helper rules: OPA evaluates the arguments of a call before `not`,
# so `not host in data.x[role]` is undefined, not true, when data.x is missing.
role_destination if host in data.tollgate.role_destinations[role]
