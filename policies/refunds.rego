# Refunds: a refund is allowed only for a positive amount up to the caller's role limit in
# data.tollgate.refund_limits (support: 500). A refund is a POST to payments.internal
# /v1/refunds, or an MCP tools/call of a tool in data.tollgate.mcp.refund_tools (alone or
# in a batch), so the limit holds however the refund is issued. A numeric string amount
# ("900") counts as its number.
package tollgate.authz

refund_request if {
	method == "POST"
	host == "payments.internal"
	path_segments == ["v1", "refunds"]
}

# refunds maps a suffix naming where each refund came from ("" for the HTTP endpoint) to
# the arguments that carry its amount. object.get keeps a refund without a body or
# arguments in the map, so that it is denied rather than skipped.
refunds[""] := object.get(input, "parsed_body", null) if refund_request

refunds[sprintf(" (MCP tool %s)", [tool])] := object.get(input.mcp.tool, "arguments", null) if {
	input.mcp.method == "tools/call"
	tool := input.mcp.tool.name
	tool in refund_tools
}

refunds[sprintf(" (MCP tool %s, batch[%d])", [call.tool.name, i])] := object.get(call.tool, "arguments", null) if {
	input.mcp.method == "batch"
	some i, call in input.mcp.batch
	call.method == "tools/call"
	call.tool.name in refund_tools
}

default refund_tools := []

refund_tools := data.tollgate.mcp.refund_tools

# Without the body there is no amount to check, so a truncated refund is never allowed.
deny contains "refund body was truncated, so its amount cannot be verified" if {
	refund_request
	body_truncated
}

deny contains sprintf("refund has no amount%s", [via]) if {
	some via, arguments in refunds
	not body_truncated
	not has_amount(arguments)
}

deny contains sprintf("refund amount must be a number, got %s%s", [describe(arguments.amount), via]) if {
	some via, arguments in refunds
	has_amount(arguments)
	not as_number(arguments.amount)
}

deny contains sprintf("refund of %v is not a positive amount%s", [amount, via]) if {
	some via, arguments in refunds
	amount := as_number(arguments.amount)
	amount <= 0
}

deny contains sprintf("refund of %v exceeds the %s limit of %v%s", [amount, role, limit, via]) if {
	some via, arguments in refunds
	amount := as_number(arguments.amount)
	limit := refund_limit
	amount > limit
	not within_approval(amount)
}

# A refund a human may approve (governance.rego) is not denied for its size alone.
within_approval(amount) if {
	count(refunds) == 1
	amount <= data.tollgate.governance.refund_approvals[agent_id].up_to
}

# A missing or non-numeric limit denies rather than comparing a number with a string.
deny contains sprintf("no refund limit is configured for role %s", [role]) if {
	count(refunds) > 0
	not refund_limit
}

refund_limit := limit if {
	limit := data.tollgate.refund_limits[role]
	is_number(limit)
}

# has_amount holds even when the amount is false or null, which are then reported as
# not numbers rather than as missing.
has_amount(arguments) if {
	is_object(arguments)
	_ = arguments.amount
}
