package tollgate.authz_test

import data.tollgate.authz

test_allow_is_the_decision_as_a_boolean if {
	authz.allow with input as call("support-bot", "GET", "crm.internal", "/")
	not authz.allow with input as call("ghost-bot", "GET", "crm.internal", "/")
}

test_a_denial_carries_sorted_reasons_and_leaves_the_status_to_the_sidecar if {
	authz.decision == {
		"allowed": false,
		"reasons": ["agent ghost-bot is not registered", "destination evil.example is not registered"],
	} with input as call("ghost-bot", "GET", "evil.example", "/")
}

test_an_allow_names_the_agent_and_strips_the_debug_header if {
	decision := authz.decision with input as call("trader-1", "GET", "orders.internal", "/v1/orders/1")
	decision.headers == {"x-tollgate-agent": "trader-1"}
	decision.request_headers_to_remove == ["x-tollgate-debug"]
	not "http_status" in object.keys(decision)
}

# The default exists for the case nothing else can decide; it must deny.
test_falls_back_to_a_denial_when_no_rule_decides if {
	authz.decision == {
		"allowed": false,
		"reasons": ["policy reached no decision"],
	} with authz.deny as set()
		with input as object.remove(call("support-bot", "GET", "crm.internal", "/"), ["agent"])
}
