# The central layer of bench/chain.sh's chain-remote variant, served by opa-envoy-plugin:
# the seed decision (policies/) on opa-envoy-plugin's input, with the agent Tollgate sends
# in metadata_context (filter_metadata "tollgate") put where the seed policy reads it.
package tollgate.remote

decision := d if {
	agent := input.attributes.metadataContext.filterMetadata.tollgate.agent
	d := data.tollgate.authz.decision with input as object.union(input, {"agent": agent})
}
