# HR isolation: customer-service agents never reach hr.internal. This holds in code, not
# data, so that adding hr.internal to the customer-service role by mistake cannot open it.
package tollgate.authz

deny contains sprintf("agent %s has role customer-service, which may never reach hr.internal", [agent_id]) if {
	role == "customer-service"
	host == "hr.internal"
}
