package tollgate.authz_test

import data.tollgate.authz

pinned_call(tool, changed) := object.union(mcp_call("support-bot", tool, {}), {"mcp": {"tool": {
	"pinned": true,
	"changed": changed,
	"pinned_sha256": "aaaaaaaaaaaa0000000000000000000000000000000000000000000000000000",
	"observed_sha256": "bbbbbbbbbbbb0000000000000000000000000000000000000000000000000000",
}}})

test_denies_a_call_of_a_tool_whose_definition_changed if {
	authz.decision.reasons == ["MCP tool lookup_customer on mcp.internal changed since it was pinned (pinned aaaaaaaaaaaa, now bbbbbbbbbbbb): accept it with tollgate mcp tools accept"] with input as pinned_call("lookup_customer", true)
}

test_allows_a_call_of_a_tool_that_matches_its_pin if {
	authz.decision.allowed with input as pinned_call("lookup_customer", false)
}

# Tools never listed are not pinned; the seed policy does not require pins.
test_allows_a_call_of_an_unpinned_tool if {
	authz.decision.allowed with input as object.union(mcp_call("support-bot", "lookup_customer", {}), {"mcp": {"tool": {"pinned": false, "changed": false}}})
}

test_denies_a_changed_tool_inside_a_batch if {
	authz.decision.reasons == ["MCP tool lookup_customer in batch[1] on mcp.internal changed since it was pinned (pinned unknown, now unknown): accept it with tollgate mcp tools accept"] with input as batch("support-bot", [
		{"id": 1, "method": "initialize"},
		{"id": 2, "method": "tools/call", "tool": {"name": "lookup_customer", "arguments": {}, "changed": true}},
	])
}
