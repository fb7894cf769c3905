package tollgate.authz_test

import data.tollgate.authz

billing_refund(body) := post_json("billing-bot", "payments.internal", "/v1/refunds", body)

with_usage(request, usage) := object.union(request, {"usage": usage})

test_a_billing_refund_charges_the_daily_refund_budget if {
	decision := authz.decision with input as billing_refund({"amount": 100})
	decision.allowed
	decision.budgets == [{
		"key": "refunds:billing-bot",
		"name": "daily_refunds",
		"cost": 100,
		"limit": 2000,
		"window": "24h",
		"refund_on": ["upstream_error", "upstream_5xx"],
	}]
	not decision.approval
}

test_a_support_refund_names_no_budget if {
	decision := authz.decision with input as refund({"amount": 100})
	decision.allowed
	not decision.budgets
	not decision.rates
}

test_a_refund_through_the_mcp_tool_charges_the_same_budget if {
	decision := authz.decision with input as mcp_call("billing-bot", "issue_refund", {"amount": 40})
	decision.allowed
	decision.budgets[0].key == "refunds:billing-bot"
	decision.budgets[0].cost == 40
	decision.rates == [{"key": "tool:billing-bot:issue_refund", "name": "mcp_tool_calls", "rate": 5, "burst": 5}]
}

test_every_mcp_tool_call_of_billing_bot_has_a_rate_per_tool if {
	decision := authz.decision with input as mcp_call("billing-bot", "lookup_customer", {"id": "c-1"})
	decision.rates[0].key == "tool:billing-bot:lookup_customer"
}

test_above_80_percent_of_the_budget_only_small_refunds_pass if {
	usage := {"refunds:billing-bot": {"used": 1700, "limit": 2000, "remaining": 300, "window_seconds": 86400}}
	authz.decision.reasons == ["refund budget refunds:billing-bot is 85% used: only refunds under 100 are allowed now"] with input as with_usage(billing_refund({"amount": 100}), usage)
	authz.decision.allowed with input as with_usage(billing_refund({"amount": 99}), usage)
}

test_below_80_percent_of_the_budget_any_refund_up_to_the_limit_passes if {
	usage := {"refunds:billing-bot": {"used": 1500, "limit": 2000, "remaining": 500, "window_seconds": 86400}}
	authz.decision.allowed with input as with_usage(billing_refund({"amount": 400}), usage)
}

test_a_billing_refund_above_500_needs_a_finance_approver if {
	decision := authz.decision with input as billing_refund({"amount": 900})
	decision.allowed
	decision.approval == {
		"required": true,
		"reasons": ["refund of 900 is above the billing limit of 500"],
		"approvers": ["finance-lead", "cfo"],
		"ttl": "1h",
		"uses": 1,
	}
}

test_a_billing_refund_above_the_approval_ceiling_is_denied if {
	authz.decision.reasons == ["refund of 5000.01 exceeds the billing limit of 500"] with input as billing_refund({"amount": 5000.01})
}

test_a_support_refund_above_500_is_still_denied_without_approval if {
	# The limit itself is pinned in refunds_test.rego.
	decision := authz.decision with input as refund({"amount": 900})
	not decision.allowed
	startswith(decision.reasons[0], "refund of 900 exceeds the support limit of ")
}

test_an_order_charges_the_hourly_notional_budget if {
	decision := authz.decision with input as order({"quantity": -10, "price": 250})
	decision.allowed
	decision.budgets == [{
		"key": "notional:trader-1",
		"name": "hourly_notional",
		"cost": 2500,
		"limit": 500000,
		"window": "1h",
		"refund_on": ["upstream_error", "upstream_5xx"],
	}]
}

test_a_read_names_no_state if {
	decision := authz.decision with input as call("trader-1", "GET", "orders.internal", "/v1/orders/1")
	object.keys(decision) == {"allowed", "reasons", "headers", "request_headers_to_remove"}
}
