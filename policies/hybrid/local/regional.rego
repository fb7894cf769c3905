# The local layer of the hybrid example: a regional adaptation owned by the EU team,
# evaluated after the central core rules (policies/) in a deny-overrides PDP chain.
# It only tightens: refunds by agents labelled region=eu are capped at the EU limit,
# lower than the central one. On every other request it has no opinion
# ("applicable": false), so the central layer alone decides.
package tollgate.local

# Per-region refund caps, in the refund's currency units.
regional_refund_limits := {"eu": 200}

region := r if {
	r := input.agent.labels.region
	is_string(r)
}

default decision := {"applicable": false, "reasons": []}

decision := {"allowed": false, "reasons": sort(deny)} if count(deny) > 0

deny contains sprintf("refund of %v exceeds the %s regional limit of %v", [amount, upper(region), limit]) if {
	limit := regional_refund_limits[region]
	some amount in refund_amounts
	amount > limit
}

host := lower(split(input.attributes.request.http.host, ":")[0])

path := trim_suffix(lower(split(input.attributes.request.http.path, "?")[0]), "/")

# refund_amounts are the numeric amounts of this request's refunds: the HTTP endpoint
# and the MCP issue_refund tool. Malformed amounts are the central layer's to deny.
refund_amounts contains as_number(input.parsed_body.amount) if {
	upper(input.attributes.request.http.method) == "POST"
	host == "payments.internal"
	path == "/v1/refunds"
	plain_number(input.parsed_body.amount)
}

refund_amounts contains as_number(input.mcp.tool.arguments.amount) if {
	input.mcp.method == "tools/call"
	input.mcp.tool.name == "issue_refund"
	plain_number(input.mcp.tool.arguments.amount)
}

as_number(x) := x if is_number(x)

as_number(x) := to_number(x) if is_string(x)

plain_number(x) if is_number(x)

plain_number(x) if {
	is_string(x)
	regex.match(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?$`, x)
}
