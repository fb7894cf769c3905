# Tunnels: a CONNECT (or transparent) tunnel whose bytes are neither TLS nor HTTP — or
# that stays silent — is the "opaque" phase (input.connect.phase). Nothing in it can be
# decided request by request, so it is relayed only to destinations whose registry entry
# says `"opaque": true`; the seed registers none.
package tollgate.authz

deny contains sprintf("tunnel to %s carries bytes that are neither TLS nor HTTP", [input.connect.authority]) if {
	input.connect.phase == "opaque"
	not opaque_destination
}

opaque_destination if data.tollgate.destinations[host].opaque == true
