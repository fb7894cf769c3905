package tollgate.authz_test

import data.tollgate.authz

hr_reason := "agent cs-bot has role customer-service, which may never reach hr.internal"

test_denies_a_customer_service_agent_hr_internal_with_an_explicit_reason if {
	authz.decision.reasons == [hr_reason, "role customer-service may not reach hr.internal"] with input as call("cs-bot", "GET", "hr.internal", "/v1/employees")
}

# The guard is in code so that a data mistake cannot open HR records.
test_denies_hr_internal_even_when_data_grants_it_to_customer_service if {
	authz.decision.reasons == [hr_reason] with input as call("cs-bot", "GET", "hr.internal:443", "/v1/employees")
		with data.tollgate.role_destinations["customer-service"] as ["crm.internal", "hr.internal"]
}

test_allows_a_customer_service_agent_its_own_destinations if {
	authz.decision.allowed with input as call("cs-bot", "GET", "crm.internal", "/v1/customers/42")
}

test_allows_the_hr_agent_to_reach_hr_internal if {
	authz.decision.allowed with input as call("hr-bot", "GET", "hr.internal", "/v1/employees")
}
