package tollgate.authz_test

import data.tollgate.authz

test_allows_an_order_at_the_max_notional if {
	authz.decision.allowed with input as order({"symbol": "ACME", "quantity": 1000, "price": 100})
}

test_denies_an_order_above_the_max_notional if {
	authz.decision.reasons == ["order notional of 100010 (quantity 1000 at price 100.01) exceeds the max_notional of 100000 for agent trader-1"] with input as order({"quantity": 1000, "price": 100.01})
}

test_denies_an_order_one_cent_above_the_max_notional if {
	authz.decision.reasons == ["order notional of 100000.01 (quantity 1 at price 100000.01) exceeds the max_notional of 100000 for agent trader-1"] with input as order({"quantity": 1, "price": 100000.01})
}

# 10 * 100.01 is 1000.10000000000000003 in OPA's Go evaluator but 1000.1 in WebAssembly.
test_compares_a_decimal_notional_exactly_at_the_limit if {
	authz.decision.allowed with input as order({"quantity": 10, "price": 100.01})
		with data.tollgate.risk_limits["trader-1"].max_notional as 1000.1
}

test_treats_numeric_strings_as_numbers if {
	authz.decision.allowed with input as order({"quantity": "1000", "price": "100"})
	not authz.allow with input as order({"quantity": "1001", "price": "100"})
}

# Selling is as risky as buying.
test_denies_a_negative_quantity_above_the_max_notional if {
	authz.decision.reasons == ["order notional of 100100 (quantity -1001 at price 100) exceeds the max_notional of 100000 for agent trader-1"] with input as order({"quantity": -1001, "price": 100})
}

test_reads_the_limit_per_agent if {
	authz.decision.allowed with input as order({"quantity": 1001, "price": 100})
		with data.tollgate.risk_limits["trader-1"].max_notional as 200000
}

test_denies_an_order_from_an_agent_without_a_risk_limit if {
	authz.decision.reasons == ["no risk limit (max_notional) is configured for agent trader-1"] with input as order({"quantity": 1, "price": 1})
		with data.tollgate.risk_limits as {}
	request := object.union(
		post_json("trader-2", "orders.internal", "/v1/orders", {"quantity": 1, "price": 1}),
		{"agent": {"role": "trading"}},
	)
	authz.decision.reasons == ["no risk limit (max_notional) is configured for agent trader-2"] with input as request
		with data.tollgate.agents["trader-2"] as {"role": "trading"}
	authz.decision.reasons == ["no risk limit (max_notional) is configured for agent trader-1"] with input as order({"quantity": 1, "price": 1})
		with data.tollgate.risk_limits["trader-1"].max_notional as "100000"
}

test_denies_an_order_missing_quantity_or_price if {
	authz.decision.reasons == ["order has no price", "order has no quantity"] with input as order({"symbol": "ACME"})
	authz.decision.reasons == ["order has no price"] with input as order({"quantity": 1})
}

test_denies_an_order_whose_fields_are_not_numbers if {
	authz.decision.reasons == ["order price must be a number, got \"cheap\""] with input as order({"quantity": 1, "price": "cheap"})
}

test_denies_a_truncated_order if {
	authz.decision.reasons == ["order body was truncated, so its notional cannot be verified"] with input as truncated(order({"quantity": 1, "price": 1}))
}

test_leaves_order_reads_to_the_destination_rules if {
	authz.decision.allowed with input as call("trader-1", "GET", "orders.internal", "/v1/orders")
}
