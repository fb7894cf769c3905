package tollgate.authz_test

import data.tollgate.authz

allowed := {
	"allowed": true,
	"reasons": [],
	"headers": {"x-tollgate-agent": "support-bot"},
	"request_headers_to_remove": ["x-tollgate-debug"],
}

test_allows_a_registered_agent_to_reach_a_destination_of_its_role if {
	authz.decision == allowed with input as call("support-bot", "GET", "crm.internal", "/v1/customers/42")
}

test_denies_a_request_without_an_agent if {
	authz.decision.reasons == ["request names no agent"] with input as object.remove(
		call("support-bot", "GET", "crm.internal", "/"),
		["agent"],
	)
}

test_denies_an_empty_agent_id if {
	authz.decision.reasons == ["request names no agent"] with input as call("", "GET", "crm.internal", "/")
}

test_denies_a_non_string_agent_id if {
	request := object.union(call("support-bot", "GET", "crm.internal", "/"), {"agent": {"id": 7}})
	authz.decision.reasons == ["request names no agent"] with input as request
}

test_denies_an_unregistered_agent if {
	authz.decision.reasons == ["agent ghost-bot is not registered"] with input as call("ghost-bot", "GET", "crm.internal", "/")
}

# The role is taken from the registry; a sidecar claiming another role is misconfigured.
test_denies_an_agent_claiming_a_role_it_is_not_registered_with if {
	request := object.union(call("support-bot", "GET", "crm.internal", "/"), {"agent": {"role": "trading"}})
	authz.decision.reasons == ["agent support-bot claims role trading but is registered with role support"] with input as request
}

test_allows_an_agent_whose_config_claims_an_empty_role if {
	request := object.union(call("support-bot", "GET", "crm.internal", "/"), {"agent": {"role": ""}})
	authz.decision.allowed with input as request
}

test_allows_an_agent_whose_config_names_no_role if {
	request := json.remove(call("support-bot", "GET", "crm.internal", "/"), ["agent/role"])
	authz.decision.allowed with input as request
}

test_denies_an_unregistered_destination if {
	authz.decision.reasons == ["destination evil.example is not registered"] with input as call("support-bot", "GET", "evil.example", "/")
}

test_denies_a_destination_that_only_starts_like_a_registered_one if {
	authz.decision.reasons == ["destination crm.internal.evil.example is not registered"] with input as call("support-bot", "GET", "crm.internal.evil.example", "/")
}

test_denies_a_request_without_a_host if {
	authz.decision.reasons == ["request has no destination host"] with input as call("support-bot", "GET", "", "/")
}

test_denies_a_request_whose_input_has_no_http_attributes if {
	authz.decision.reasons == ["request has no destination host"] with input as {"agent": {"id": "support-bot", "role": "support"}}
}

test_matches_the_destination_without_port_case_or_trailing_dot if {
	every authority in ["crm.internal:8443", "CRM.Internal", "crm.internal.", "crm.internal.:80"] {
		authz.decision.allowed with input as call("support-bot", "GET", authority, "/")
	}
}

test_denies_an_authority_with_two_ports if {
	authz.decision.reasons == ["destination crm.internal:80:80 is not registered"] with input as call("support-bot", "GET", "crm.internal:80:80", "/")
}

# "[::1]:80" must become "::1", not "[" (first colon) nor "[::1]" (last colon).
test_strips_brackets_and_port_from_an_ipv6_destination if {
	every authority in ["[::1]:80", "[::1]", "::1"] {
		authz.decision.allowed with input as call("support-bot", "GET", authority, "/")
			with data.tollgate.destinations as {"::1": {}}
			with data.tollgate.role_destinations as {"support": ["::1"]}
	}
}

test_denies_an_unregistered_ipv6_destination if {
	authz.decision.reasons == ["destination ::2 is not registered"] with input as call("support-bot", "GET", "[::2]:80", "/")
		with data.tollgate.destinations as {"::1": {}}
		with data.tollgate.role_destinations as {"support": ["::1"]}
}

test_denies_a_registered_destination_outside_the_role if {
	authz.decision.reasons == ["role support may not reach orders.internal"] with input as call("support-bot", "GET", "orders.internal", "/")
}

test_denies_every_destination_to_a_role_without_a_list if {
	authz.decision.reasons == ["role support may not reach crm.internal"] with input as call("support-bot", "GET", "crm.internal", "/")
		with data.tollgate.role_destinations as {}
}

# Missing data must close, not open: a negated lookup of missing data is a classic leak.
test_denies_every_destination_when_role_destinations_are_missing if {
	authz.decision.reasons == ["role support may not reach crm.internal"] with input as call("support-bot", "GET", "crm.internal", "/")
		with data.tollgate.role_destinations as null
}

test_denies_a_path_with_dot_segments if {
	request := call("support-bot", "GET", "crm.internal", "/v1/x/../customers")
	authz.decision.reasons == ["path /v1/x/../customers contains a dot segment"] with input as request
}

test_reads_the_path_from_the_http_attributes_when_parsed_path_is_absent if {
	request := object.remove(call("support-bot", "GET", "crm.internal", "/v1/./customers?x=1"), ["parsed_path"])
	authz.decision.reasons == ["path /v1/./customers?x=1 contains a dot segment"] with input as request
}
