package tollgate.local_test

import data.tollgate.local

refund(region, amount) := {
	"attributes": {"request": {"http": {"method": "POST", "host": "payments.internal", "path": "/v1/refunds"}}},
	"parsed_body": {"amount": amount},
	"agent": {"id": "support-bot", "role": "support", "labels": {"region": region}},
}

test_denies_an_eu_refund_over_the_regional_limit if {
	local.decision == {"allowed": false, "reasons": ["refund of 300 exceeds the EU regional limit of 200"]} with input as refund("eu", 300)
}

test_counts_a_numeric_string_amount if {
	not local.decision.allowed with input as refund("eu", "250.5")
}

test_has_no_opinion_on_an_eu_refund_within_the_regional_limit if {
	local.decision.applicable == false with input as refund("eu", 200)
}

test_has_no_opinion_outside_the_region if {
	local.decision.applicable == false with input as refund("us", 300)
}

test_denies_an_eu_refund_through_the_mcp_tool if {
	request := {
		"attributes": {"request": {"http": {"method": "POST", "host": "mcp.internal", "path": "/mcp"}}},
		"mcp": {"method": "tools/call", "tool": {"name": "issue_refund", "arguments": {"amount": 201}}},
		"agent": {"id": "support-bot", "role": "support", "labels": {"region": "eu"}},
	}
	local.decision.reasons == ["refund of 201 exceeds the EU regional limit of 200"] with input as request
}

test_leaves_malformed_amounts_to_the_central_layer if {
	local.decision.applicable == false with input as refund("eu", "abc")
}
