package tollgate.authz_test

import data.tollgate.authz

# answer(request, method, message) is the response input: the request's input plus what the server answered.
answer(request, method, message) := object.union(request, {"response": {
	"status": 200,
	"headers": {"content-type": "application/json"},
	"transport": "json",
	"method": method,
	"request": request.mcp,
	"message": message,
}})

tools_list(agent_id) := object.union(
	post_json(agent_id, "mcp.internal", "/mcp", {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
	{"mcp": {"id": 2, "method": "tools/list"}},
)

listing(agent_id, names) := answer(tools_list(agent_id), "tools/list", {
	"jsonrpc": "2.0", "id": 2,
	"result": {"tools": [{"name": n, "description": "d", "inputSchema": {"type": "object"}} | some n in names]},
})

tool_result(text) := answer(mcp_call("support-bot", "lookup_customer", {"id": "c-1"}), "tools/call", {
	"jsonrpc": "2.0", "id": 1,
	"result": {"content": [{"type": "text", "text": text}]},
})

test_hides_tools_the_role_may_not_call if {
	r := authz.response with input as listing("support-bot", ["lookup_customer", "delete_customer", "export_all_customers", "issue_refund"])
	r.allowed
	r.remove_tools == ["delete_customer", "export_all_customers"]
	r.reasons == [
		"tools/list: tool delete_customer hidden from role support",
		"tools/list: tool export_all_customers hidden from role support",
	]
}

# The list follows the same per-role data as the call rule.
test_hides_refund_tools_from_customer_service if {
	r := authz.response with input as listing("cs-bot", ["lookup_customer", "issue_refund"])
	r.remove_tools == ["issue_refund"]
}

test_leaves_a_permitted_list_alone if {
	r := authz.response with input as listing("support-bot", ["lookup_customer"])
	r.allowed
	r.remove_tools == []
	r.redact == []
	r.reasons == []
}

test_redacts_an_api_key_in_a_tool_result if {
	r := authz.response with input as tool_result("the key is sk_live_0123456789abcdefXYZ, keep it safe")
	r.allowed
	count(r.redact) == 1
	r.redact[0].replacement == "[REDACTED:api-key]"
	r.reasons == ["redacted an API key from the result of tool lookup_customer"]
}

test_redacts_a_card_number_in_a_tool_result if {
	r := authz.response with input as tool_result("card 4111 1111 1111 1111 on file")
	r.redact[0].replacement == "[REDACTED:card-number]"
	r.reasons == ["redacted a payment card number from the result of tool lookup_customer"]
}

test_blocks_a_result_carrying_a_private_key if {
	r := authz.response with input as tool_result("-----BEGIN RSA PRIVATE KEY-----\nMIIE...")
	not r.allowed
	r.reasons == ["the result of tool lookup_customer carries a private key"]
}

test_passes_a_clean_tool_result if {
	r := authz.response with input as tool_result("customer c-1: Ada, 3 orders")
	r.allowed
	r.redact == []
}

# Only tool results are scanned: an initialize answer naming a key-like string is not.
test_ignores_answers_other_than_tool_results if {
	r := authz.response with input as answer(tools_list("support-bot"), "initialize", {"jsonrpc": "2.0", "id": 2, "result": {"serverInfo": {"name": "sk_live_0123456789abcdefXYZ"}}})
	r.allowed
	r.redact == []
}

# A broken rule set must not relay the message: the default blocks it.
test_blocks_when_no_response_body_can_be_built if {
	r := authz.response with input as tool_result("x") with authz.response_blocks as 5
	not r.allowed
	r.reasons == ["policy reached no response decision"]
}

# Data without redact or block lists scans nothing.
test_scans_nothing_without_redact_or_block_data if {
	r := authz.response with input as tool_result("sk_live_0123456789abcdefXYZ") with data.tollgate.mcp as {"denied_tools": {}}
	r.allowed
	r.redact == []
}

# An answer whose id matches no request still gets a reason naming no tool.
test_names_no_tool_when_the_answer_matches_no_request if {
	request := json.remove(tool_result("sk_live_0123456789abcdefXYZ"), ["response/request"])
	r := authz.response with input as request
	r.reasons == ["redacted an API key from the result of tool "]
}

test_notes_a_changed_tool_definition_in_a_list if {
	request := object.union(listing("support-bot", ["lookup_customer"]), {"response": {"tools": [{"name": "lookup_customer", "pinned": true, "changed": true}]}})
	r := authz.response with input as request
	r.allowed
	r.reasons == ["tools/list: tool lookup_customer changed since it was pinned"]
}
