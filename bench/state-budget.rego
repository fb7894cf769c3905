# The state bench's policy: every allowed call charges one budget whose limit is never
# reached, unless data.bench.state is false (the baseline without state).
package tollgate.authz

default decision := {"allowed": false, "reasons": ["not the bench call"]}

decision := {"allowed": true, "budgets": [{"key": "bench", "cost": 1, "limit": 1000000000000, "window": "1h"}]} if {
	data.bench.state
	input.attributes.request.http.path == "/v1/refunds/r-1"
}

decision := {"allowed": true} if {
	not data.bench.state
	input.attributes.request.http.path == "/v1/refunds/r-1"
}
