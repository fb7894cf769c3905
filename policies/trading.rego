# Trading: a POST to orders.internal /v1/orders is allowed only when its notional
# (|quantity x price|) is within the calling agent's max_notional in
# data.tollgate.risk_limits; an agent without a limit may not place orders.
package tollgate.authz

order_request if {
	method == "POST"
	host == "orders.internal"
	path_segments == ["v1", "orders"]
}

deny contains "order body was truncated, so its notional cannot be verified" if {
	order_request
	body_truncated
}

deny contains sprintf("order has no %s", [field]) if {
	order_request
	not body_truncated
	some field in order_fields
	not has_body_field(field)
}

deny contains sprintf("order %s must be a number, got %s", [field, describe(raw)]) if {
	order_request
	some field in order_fields
	raw := body_field(field)
	not as_number(raw)
}

# abs: a negative quantity (a sell, in some APIs) carries the same risk as a positive one.
deny contains sprintf(
	"order notional of %v (quantity %v at price %v) exceeds the max_notional of %v for agent %s",
	[notional, quantity, price, limit, agent_id],
) if {
	order_request
	quantity := as_number(body_field("quantity"))
	price := as_number(body_field("price"))
	notional := abs(quantity * price)
	limit := max_notional
	exceeds(notional, limit)
}

deny contains sprintf("no risk limit (max_notional) is configured for agent %s", [agent_id]) if {
	order_request
	not max_notional
}

max_notional := limit if {
	limit := data.tollgate.risk_limits[agent_id].max_notional
	is_number(limit)
}

order_fields := ["quantity", "price"]
