package tollgate.authz_test

import data.tollgate.authz

test_allows_a_refund_at_the_support_limit if {
	authz.decision.allowed with input as refund({"amount": 500, "currency": "EUR"})
}

test_allows_a_refund_of_one_cent if {
	authz.decision.allowed with input as refund({"amount": 0.01})
}

test_denies_a_refund_one_cent_above_the_support_limit if {
	authz.decision.reasons == ["refund of 500.01 exceeds the support limit of 500"] with input as refund({"amount": 500.01})
}

test_denies_a_refund_a_millionth_above_the_support_limit if {
	authz.decision.reasons == ["refund of 500.000001 exceeds the support limit of 500"] with input as refund({"amount": "500.000001"})
}

test_denies_a_refund_of_900_01 if {
	authz.decision.reasons == ["refund of 900.01 exceeds the support limit of 500"] with input as refund({"amount": 900.01})
}

test_treats_a_numeric_string_amount_as_its_number if {
	authz.decision.allowed with input as refund({"amount": "500"})
	authz.decision.reasons == ["refund of 900 exceeds the support limit of 500"] with input as refund({"amount": "900"})
	authz.decision.reasons == ["refund of 500.01 exceeds the support limit of 500"] with input as refund({"amount": "500.01"})
}

test_denies_a_refund_without_an_amount if {
	authz.decision.reasons == ["refund has no amount"] with input as refund({"currency": "EUR"})
}

test_denies_a_refund_without_a_parsed_body if {
	request := call("support-bot", "POST", "payments.internal", "/v1/refunds")
	authz.decision.reasons == ["refund has no amount"] with input as request
	authz.decision.reasons == ["refund has no amount"] with input as object.remove(request, ["parsed_body"])
}

test_denies_a_refund_whose_amount_is_not_a_number if {
	authz.decision.reasons == ["refund amount must be a number, got \"abc\""] with input as refund({"amount": "abc"})
	authz.decision.reasons == ["refund amount must be a number, got a value of type boolean"] with input as refund({"amount": false})
	authz.decision.reasons == ["refund amount must be a number, got a value of type null"] with input as refund({"amount": null})
}

# Only plain decimals count: the Go and WebAssembly evaluators differ on the rest.
test_denies_a_refund_amount_spelled_with_an_exponent_or_padding if {
	every amount in ["1e2", " 100", "0x10", "Inf", "+100", "0100", "100."] {
		authz.decision.reasons == [sprintf("refund amount must be a number, got \"%s\"", [amount])] with input as refund({"amount": amount})
	}
}

# A form-encoded body parses to lists of strings, which are not amounts.
test_denies_a_form_encoded_refund if {
	authz.decision.reasons == ["refund amount must be a number, got a value of type array"] with input as refund({"amount": ["100"]})
}

test_denies_a_refund_of_zero_or_less if {
	authz.decision.reasons == ["refund of 0 is not a positive amount"] with input as refund({"amount": 0})
	authz.decision.reasons == ["refund of -900 is not a positive amount"] with input as refund({"amount": "-900"})
}

# The amount cannot be read from a body that outgrew the buffer.
test_denies_a_truncated_refund if {
	authz.decision.reasons == ["refund body was truncated, so its amount cannot be verified"] with input as truncated(refund({"amount": 1}))
}

test_checks_every_spelling_of_the_refund_path if {
	every path in ["/v1/refunds/", "/V1/Refunds", "/v1//refunds?dry_run=1"] {
		authz.decision.reasons == ["refund of 900 exceeds the support limit of 500"] with input as post_json("support-bot", "payments.internal:80", path, {"amount": 900})
	}
}

test_leaves_other_payment_calls_to_the_destination_rules if {
	authz.decision.allowed with input as call("support-bot", "GET", "payments.internal", "/v1/refunds")
	authz.decision.allowed with input as post_json("support-bot", "payments.internal", "/v1/refunds/r1/notes", {"amount": 900})
}

test_reads_the_limit_from_data if {
	authz.decision.allowed with input as refund({"amount": 900}) with data.tollgate.refund_limits.support as 1000
}

test_denies_a_refund_when_the_role_has_no_numeric_limit if {
	authz.decision.reasons == ["no refund limit is configured for role support"] with input as refund({"amount": 1})
		with data.tollgate.refund_limits as {}
	authz.decision.reasons == ["no refund limit is configured for role support"] with input as refund({"amount": 1})
		with data.tollgate.refund_limits.support as "500"
	authz.decision.reasons == ["no refund limit is configured for role support"] with input as refund({"amount": 1})
		with data.tollgate.refund_limits as null
}

# The limit holds however the refund is issued, including through the MCP server.
test_applies_the_limit_to_an_mcp_refund_tool if {
	authz.decision.allowed with input as mcp_call("support-bot", "issue_refund", {"amount": 500})
	authz.decision.reasons == ["refund of 500.01 exceeds the support limit of 500 (MCP tool issue_refund)"] with input as mcp_call("support-bot", "issue_refund", {"amount": 500.01})
	authz.decision.reasons == ["refund has no amount (MCP tool issue_refund)"] with input as mcp_call("support-bot", "issue_refund", {})
	authz.decision.reasons == ["refund has no amount (MCP tool issue_refund)"] with input as json.remove(
		mcp_call("support-bot", "issue_refund", {}),
		["mcp/tool/arguments"],
	)
}

test_applies_the_limit_to_each_mcp_refund_in_a_batch if {
	request := object.union(post_json("support-bot", "mcp.internal", "/mcp", []), {"mcp": {"method": "batch", "batch": [
		{"id": 1, "method": "tools/call", "tool": {"name": "issue_refund", "arguments": {"amount": 20}}},
		{"id": 2, "method": "tools/list"},
		{"id": 3, "method": "tools/call", "tool": {"name": "issue_refund", "arguments": {"amount": "abc"}}},
		{"id": 4, "method": "tools/call", "tool": {"name": "issue_refund", "arguments": {"amount": 501}}},
		{"id": 5, "method": "tools/call", "tool": {"name": "issue_refund"}},
	]}})
	authz.decision.reasons == [
		"refund amount must be a number, got \"abc\" (MCP tool issue_refund, batch[2])",
		"refund has no amount (MCP tool issue_refund, batch[4])",
		"refund of 501 exceeds the support limit of 500 (MCP tool issue_refund, batch[3])",
	] with input as request
}

test_checks_no_mcp_refunds_when_no_refund_tools_are_configured if {
	authz.decision.allowed with input as mcp_call("support-bot", "issue_refund", {"amount": 501})
		with data.tollgate.mcp as {"servers": ["mcp.internal"]}
}
