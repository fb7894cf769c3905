package tollgate.authz_test

import data.tollgate.authz

test_keeps_every_role_destination_at_the_normal_level if {
	authz.decision.allowed with input as call("support-bot", "GET", "mcp.internal", "/mcp")
}

test_narrows_a_role_to_its_allow_list_when_elevated if {
	authz.decision.reasons == ["threat level is elevated and mcp.internal is not on the allow-list for role support"] with input as call("support-bot", "GET", "mcp.internal", "/mcp")
		with data.tollgate.threat.level as "elevated"
	authz.decision.allowed with input as call("support-bot", "GET", "crm.internal", "/")
		with data.tollgate.threat.level as "elevated"
}

test_halts_trading_when_elevated if {
	authz.decision.reasons == ["threat level is elevated and orders.internal is not on the allow-list for role trading"] with input as call("trader-1", "GET", "orders.internal", "/v1/orders")
		with data.tollgate.threat.level as "elevated"
}

# The allow-list narrows the role's destinations, never widens them.
test_never_widens_a_role_when_elevated if {
	authz.decision.reasons == ["role support may not reach orders.internal"] with input as call("support-bot", "GET", "orders.internal", "/")
		with data.tollgate.threat as {"level": "elevated", "allowlist": {"support": ["orders.internal"]}}
}

test_denies_everything_to_a_role_without_an_allow_list_when_elevated if {
	reasons := ["threat level is elevated and crm.internal is not on the allow-list for role support"]
	authz.decision.reasons == reasons with input as call("support-bot", "GET", "crm.internal", "/")
		with data.tollgate.threat as {"level": "elevated"}
	authz.decision.reasons == reasons with input as call("support-bot", "GET", "crm.internal", "/")
		with data.tollgate.threat as {"level": "elevated", "allowlist": {}}
}

test_treats_an_unknown_level_as_elevated if {
	authz.decision.reasons == ["threat level is severe and mcp.internal is not on the allow-list for role support"] with input as call("support-bot", "GET", "mcp.internal", "/mcp")
		with data.tollgate.threat.level as "severe"
}

test_defaults_to_normal_without_a_threat_level if {
	authz.decision.allowed with input as call("support-bot", "GET", "mcp.internal", "/mcp")
		with data.tollgate.threat as {}
}
