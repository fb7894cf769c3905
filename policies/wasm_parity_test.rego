# Inputs that scripts/test-policies.sh evaluates with both OPA's Go evaluator (which runs
# these tests) and the WebAssembly bundle Tollgate runs (via wasm-parity.mjs), requiring
# the same decision: the two differ on arithmetic, number parsing and sprintf, so tests
# that pass here must also hold for the bundle. Seed data only; one case per kind of reason.
package tollgate.authz_test

import data.tollgate.authz

wasm_parity_cases := [
	call("support-bot", "GET", "crm.internal", "/v1/customers/42"),
	object.remove(call("support-bot", "GET", "crm.internal", "/"), ["agent"]),
	call("ghost-bot", "GET", "evil.example", "/"),
	object.union(call("support-bot", "GET", "crm.internal", "/"), {"agent": {"role": "trading"}}),
	call("support-bot", "GET", "[::1]:80", "/"),
	call("support-bot", "GET", "CRM.Internal.:80", "/v1/x/../y"),
	call("support-bot", "GET", "", "/"),
	call("support-bot", "GET", "orders.internal", "/"),
	refund({"amount": 500}),
	refund({"amount": 500.01}),
	refund({"amount": "900"}),
	refund({"amount": "900.01"}),
	refund({"amount": "500.000001"}),
	refund({"amount": "abc"}),
	refund({"amount": ["100"]}),
	refund({"amount": null}),
	refund({"amount": false}),
	refund({"amount": "1e2"}),
	refund({"amount": -3}),
	refund({}),
	truncated(refund({"amount": 1})),
	call("cs-bot", "GET", "hr.internal", "/"),
	order({"quantity": 1000, "price": 100}),
	order({"quantity": 1000, "price": 100.01}),
	order({"quantity": 1, "price": 100000.01}),
	order({"quantity": "-1001", "price": "100"}),
	order({"symbol": "x"}),
	order({"quantity": 1, "price": "cheap"}),
	loan_decision,
	with_header(loan_decision, "x-fair-lending-check-id", " "),
	with_header(loan_decision, "x-fair-lending-check-id", "flc-1"),
	mcp_call("support-bot", "delete_customer", {}),
	mcp_call("support-bot", "issue_refund", {"amount": 501}),
	mcp_call("cs-bot", "issue_refund", {"amount": 1}),
	batch("support-bot", [
		{"id": 1, "method": "tools/call", "tool": {"name": "issue_refund", "arguments": {"amount": "abc"}}},
		{"id": 3, "method": "tools/call", "tool": {"name": "delete_customer", "arguments": {}}},
		{"id": 4, "method": "tools/call", "tool": {"name": "issue_refund"}},
	]),
	truncated(post_json("support-bot", "mcp.internal", "/mcp", {})),
	{},
]

# wasm_parity_expected pairs each case with the Go evaluator's decision.
wasm_parity_expected := [{"input": c, "decision": d} |
	some c in wasm_parity_cases
	d := authz.decision with input as c
]

test_every_wasm_parity_case_reaches_a_decision if {
	count(wasm_parity_expected) == count(wasm_parity_cases)
}
