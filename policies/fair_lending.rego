# Fair lending: a loan decision (POST loans.internal /v1/decisions) must cite the fair
# lending check it passed, in a non-empty x-fair-lending-check-id header.
package tollgate.authz

loan_decision_request if {
	method == "POST"
	host == "loans.internal"
	path_segments == ["v1", "decisions"]
}

deny contains "loan decision requires a non-empty x-fair-lending-check-id header" if {
	loan_decision_request
	not fair_lending_check_id
}

fair_lending_check_id := id if {
	id := trim_space(http_request.headers["x-fair-lending-check-id"])
	id != ""
}
