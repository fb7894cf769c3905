package tollgate.authz_test

import data.tollgate.authz

fair_lending_reason := "loan decision requires a non-empty x-fair-lending-check-id header"

test_allows_a_loan_decision_citing_a_fair_lending_check if {
	authz.decision.allowed with input as with_header(loan_decision, "x-fair-lending-check-id", "flc-123")
}

test_denies_a_loan_decision_without_the_header if {
	authz.decision.reasons == [fair_lending_reason] with input as loan_decision
}

test_denies_a_loan_decision_with_an_empty_or_blank_header if {
	every value in ["", "  "] {
		authz.decision.reasons == [fair_lending_reason] with input as with_header(loan_decision, "x-fair-lending-check-id", value)
	}
}

test_leaves_loan_reads_to_the_destination_rules if {
	authz.decision.allowed with input as call("loan-bot", "GET", "loans.internal", "/v1/decisions/a-1")
}
