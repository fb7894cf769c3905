# The footprint benchmark's policy: a 4-condition allow-list (the agent's role, the
# method, the destination and the path prefix), with the seed policy's result shape
# (an object with allowed and reasons), so the PEP's code path is the one users run.
package tollgate.authz

default decision := {"allowed": false, "reasons": ["not on the allow-list"]}

decision := {"allowed": true, "reasons": []} if {
	input.agent.role == "support"
	input.attributes.request.http.method in {"GET", "HEAD"}
	input.attributes.request.http.host == "payments.internal"
	startswith(input.attributes.request.http.path, "/v1/refunds/")
}
