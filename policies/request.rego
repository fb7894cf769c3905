# The normalised view of Tollgate's input that every scenario reads, so each sharp edge
# of the input (ports, IPv6 brackets, trailing dots, path spelling, numeric strings) is
# handled once, here. The input is opa-envoy-plugin's (built from an Envoy v3
# CheckRequest) plus `agent` and `mcp`; see README.md.
package tollgate.authz

http_request := object.get(input, ["attributes", "request", "http"], {})

# agent_id is the calling agent's id from the sidecar config; undefined when absent.
agent_id := id if {
	id := input.agent.id
	is_string(id)
	id != ""
}

# agent is the registry entry for agent_id; undefined for unregistered agents.
agent := a if {
	a := data.tollgate.agents[agent_id]
	is_object(a)
}

# role comes from the registry, never from the request: the sidecar's claim is only checked.
role := r if {
	r := agent.role
	is_string(r)
}

default method := ""

method := upper(m) if {
	m := http_request.method
	is_string(m)
}

# host is the destination host name: lowercase, without port, brackets or trailing dot,
# so "[::1]:8080" is "::1" and "Payments.Internal.:80" is "payments.internal".
default host := ""

host := trim_suffix(host_of(lower(h)), ".") if {
	h := http_request.host
	is_string(h)
}

# host_of strips the port from an authority; a bare IPv6 address (several colons, no
# brackets) has no port to strip.
host_of(authority) := name if {
	startswith(authority, "[")
	end := indexof(authority, "]")
	end > 0
	name := substring(authority, 1, end - 1)
} else := name if {
	parts := split(authority, ":")
	count(parts) == 2
	name := parts[0]
} else := authority

# path_segments are the decoded path segments without empty ones and lowercased, so
# "/V1//refunds/" matches the "/v1/refunds" endpoint: endpoint checks must match at least
# every spelling an upstream server might route to the same handler.
path_segments := [lower(s) | some s in raw_path_segments; s != ""]

raw_path_segments := input.parsed_path if {
	is_array(input.parsed_path)
} else := split(split(object.get(http_request, "path", ""), "?")[0], "/")

# body_truncated is true when the body exceeded the buffer limit, so parsed_body is null
# and nothing in the body can be verified.
body_truncated if input.truncated_body == true

# body_field(name) is a field of the parsed JSON or form body; undefined when absent.
body_field(name) := input.parsed_body[name] if is_object(input.parsed_body)

# has_body_field(name) holds even when the field is false or null.
has_body_field(name) if {
	is_object(input.parsed_body)
	_ = input.parsed_body[name]
}

# as_number(x) is x when it is a number, or the number a plain decimal string spells
# ("900" -> 900). Exponents, hex, "Inf" and padding are rejected by the pattern so that
# OPA's Go evaluator and the WebAssembly build agree on what is a number.
as_number(x) := x if {
	is_number(x)
} else := to_number(x) if {
	is_string(x)
	regex.match(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?$`, x)
}

# describe(x) names a non-numeric value in a reason: strings quoted, others by type.
describe(x) := sprintf("\"%s\"", [x]) if {
	is_string(x)
} else := sprintf("a value of type %s", [type_name(x)])

# exceeds(product, limit) compares a computed product in millionths: OPA's Go evaluator
# multiplies decimals in binary (10 * 100.01 = 1000.10000000000000003) while the
# WebAssembly build is exact, and both must reach the same decision at the boundary.
# Values parsed from the input compare exactly as they are (`amount > limit`).
exceeds(product, limit) if round(product * 1000000) > round(limit * 1000000)
