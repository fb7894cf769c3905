# Threat level: above "normal", every role is narrowed to the destinations in
# data.tollgate.threat.allowlist[role] (a role without an entry reaches nothing). Any level
# other than "normal" narrows, so a typo in the level fails closed.
package tollgate.authz

default threat_level := "normal"

threat_level := level if {
	level := data.tollgate.threat.level
	is_string(level)
}

deny contains sprintf("threat level is %s and %s is not on the allow-list for role %s", [threat_level, host, role]) if {
	threat_level != "normal"
	registered_destination
	not threat_allowlisted
}

threat_allowlisted if host in data.tollgate.threat.allowlist[role]
