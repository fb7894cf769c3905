package tollgate.authz_test

import data.tollgate.authz

opaque_tunnel(agent, host) := object.union(
	call(agent, "CONNECT", sprintf("%s:443", [host]), ""),
	{"connect": {"phase": "opaque", "authority": sprintf("%s:443", [host]), "host": host, "port": 443, "mode": "tunnel"}},
)

test_denies_opaque_bytes_in_a_tunnel_to_an_allowed_destination if {
	authz.decision.reasons == ["tunnel to payments.internal:443 carries bytes that are neither TLS nor HTTP"] with input as opaque_tunnel("support-bot", "payments.internal")
}

test_allows_opaque_bytes_to_a_destination_registered_for_them if {
	authz.decision.allowed with input as opaque_tunnel("support-bot", "payments.internal")
		with data.tollgate.destinations["payments.internal"] as {"description": "x", "opaque": true}
}

test_allows_the_connect_phase_of_the_same_tunnel if {
	request := object.union(
		call("support-bot", "CONNECT", "payments.internal:443", ""),
		{"connect": {"phase": "connect", "authority": "payments.internal:443", "host": "payments.internal", "port": 443, "mode": "tunnel"}},
	)
	authz.decision.allowed with input as request
}
