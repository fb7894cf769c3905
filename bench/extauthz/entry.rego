# Entrypoint of bench/extauthz.sh, loaded into both opa-envoy-plugin (as Rego) and
# Tollgate (in the WASM bundle opa builds from the same files). opa-envoy-plugin has no
# input.agent, so the agent both sides decide for is set here, identically (as
# test/fixtures/extauthz/entry.rego does for the differential test): the seed
# policies in policies/ then decide the same way on both sides.
package tollgate.bench

bench_agent := {"id": "support-bot", "role": "support"}

decision := d if {
	d := data.tollgate.authz.decision with input.agent as bench_agent
}
