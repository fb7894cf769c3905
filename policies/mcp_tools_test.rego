package tollgate.authz_test

import data.tollgate.authz

test_allows_a_tool_not_denied_to_the_role if {
	authz.decision.allowed with input as mcp_call("support-bot", "lookup_customer", {"id": "c-1"})
	authz.decision.allowed with input as mcp_call("cs-bot", "lookup_customer", {"id": "c-1"})
}

test_denies_a_tool_denied_to_the_role if {
	authz.decision.reasons == ["MCP tool delete_customer is denied for role support"] with input as mcp_call("support-bot", "delete_customer", {"id": "c-1"})
	authz.decision.reasons == ["MCP tool export_all_customers is denied for role support"] with input as mcp_call("support-bot", "export_all_customers", {})
}

test_reads_the_denied_tools_per_role if {
	authz.decision.reasons == ["MCP tool issue_refund is denied for role customer-service"] with input as mcp_call("cs-bot", "issue_refund", {"amount": 1})
		with data.tollgate.mcp.refund_tools as []
	authz.decision.allowed with input as mcp_call("support-bot", "issue_refund", {"amount": 1})
}

test_denies_a_batch_with_any_denied_tool if {
	authz.decision.reasons == ["MCP tool delete_customer in batch[2] is denied for role support"] with input as batch("support-bot", [
		{"id": 1, "method": "tools/call", "tool": {"name": "lookup_customer", "arguments": {}}},
		{"id": 2, "method": "tools/list"},
		{"id": 3, "method": "tools/call", "tool": {"name": "delete_customer", "arguments": {}}},
	])
}

test_allows_a_batch_of_permitted_calls if {
	authz.decision.allowed with input as batch("support-bot", [
		{"id": 1, "method": "tools/call", "tool": {"name": "lookup_customer", "arguments": {}}},
		{"id": 2, "method": "initialize"},
	])
}

test_allows_other_json_rpc_methods if {
	request := object.union(post_json("support-bot", "mcp.internal", "/mcp", {}), {"mcp": {"id": 1, "method": "tools/list"}})
	authz.decision.allowed with input as request
}

# A padded body would otherwise hide a denied tool call past the buffer limit.
test_denies_a_truncated_body_to_an_mcp_server if {
	authz.decision.reasons == ["body to MCP server mcp.internal was truncated, so its tool calls cannot be verified"] with input as truncated(post_json("support-bot", "mcp.internal", "/mcp", {}))
}

test_allows_a_truncated_body_to_other_destinations if {
	authz.decision.allowed with input as truncated(post_json("support-bot", "crm.internal", "/v1/notes", {}))
}
