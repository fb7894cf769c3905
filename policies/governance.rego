# Governance over time: what an allowed call consumes, and when a human must approve it.
# The decision (decision.rego) carries `budgets`, `rates` and `approval`; Tollgate checks
# and consumes them atomically after the policy allows (see README "Budgets and rate
# limits" and "Human approval"). Settings per agent live in data.tollgate.governance:
#
#   refund_budgets[agent]  {limit, window}        rolling budget of refunded amounts
#   notional_budgets[agent] {limit, window}       rolling budget of order notional
#   tool_rates[agent]      {rate, burst}          MCP tools/call rate per agent and tool
#   refund_approvals[agent] {up_to, approvers, ttl} refunds above the role limit and up to
#                                                 up_to are allowed once a human approves
#
# input.usage[key] ({used, limit, remaining, window_seconds}) is the budget's state when
# the decision is asked the second time; input.approval is this call's approval, if any.
package tollgate.authz

refund_budget_key := sprintf("refunds:%s", [agent_id])

notional_budget_key := sprintf("notional:%s", [agent_id])

# The refunded amount of this call: every refund it makes (HTTP endpoint or MCP tool).
refund_total := sum([amount |
	some arguments in refunds
	amount := as_number(arguments.amount)
])

budgets contains {
	"key": refund_budget_key,
	"name": "daily_refunds",
	"cost": refund_total,
	"limit": settings.limit,
	"window": settings.window,
	"refund_on": ["upstream_error", "upstream_5xx"],
} if {
	settings := data.tollgate.governance.refund_budgets[agent_id]
	count(refunds) > 0
}

budgets contains {
	"key": notional_budget_key,
	"name": "hourly_notional",
	"cost": abs(as_number(body_field("quantity")) * as_number(body_field("price"))),
	"limit": settings.limit,
	"window": settings.window,
	"refund_on": ["upstream_error", "upstream_5xx"],
} if {
	settings := data.tollgate.governance.notional_budgets[agent_id]
	order_request
}

rates contains {
	"key": sprintf("tool:%s:%s", [agent_id, input.mcp.tool.name]),
	"name": "mcp_tool_calls",
	"rate": settings.rate,
	"burst": settings.burst,
} if {
	settings := data.tollgate.governance.tool_rates[agent_id]
	input.mcp.method == "tools/call"
	is_string(input.mcp.tool.name)
}

# Above 80 % of the daily refund budget, only small refunds go through.
deny contains sprintf("refund budget %s is %v%% used: only refunds under 100 are allowed now", [refund_budget_key, round((used / usage.limit) * 100)]) if {
	usage := input.usage[refund_budget_key]
	used := usage.used
	used >= 0.8 * usage.limit
	refund_total >= 100
}

# A refund above the role's limit but within up_to needs a human.
refund_approval := settings if {
	settings := data.tollgate.governance.refund_approvals[agent_id]
	count(refunds) == 1
	some arguments in refunds
	amount := as_number(arguments.amount)
	amount > refund_limit
	amount <= settings.up_to
}

approval := {
	"required": true,
	"reasons": [sprintf("refund of %v is above the %s limit of %v", [refund_total, role, refund_limit])],
	"approvers": object.get(refund_approval, "approvers", []),
	"ttl": object.get(refund_approval, "ttl", "1h"),
	"uses": 1,
} if refund_approval

# The state part of an allowed decision: only the fields that apply.
governance["budgets"] := sort_by_key(budgets) if count(budgets) > 0

governance["rates"] := sort_by_key(rates) if count(rates) > 0

governance["approval"] := approval if approval

sort_by_key(items) := [item |
	some key in sort([i.key | some i in items])
	some item in items
	item.key == key
]
