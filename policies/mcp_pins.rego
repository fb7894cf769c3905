# Tool pinning: Tollgate fingerprints each server's tool definitions as it relays
# tools/list (mcp.pins.enabled) and marks a tools/call whose tool definition changed since
# it was pinned (input.mcp.tool.changed). Such a call is denied until an operator accepts
# the new definition (`tollgate mcp tools accept`): a rug pull or a poisoned description
# must not reach the agent's next call unreviewed.
package tollgate.authz

deny contains sprintf(
	"MCP tool %s on %s changed since it was pinned (pinned %s, now %s): accept it with tollgate mcp tools accept",
	[tool.name, host, short_sha(object.get(tool, "pinned_sha256", "")), short_sha(object.get(tool, "observed_sha256", ""))],
) if {
	input.mcp.method == "tools/call"
	tool := input.mcp.tool
	tool.changed == true
}

deny contains sprintf(
	"MCP tool %s in batch[%d] on %s changed since it was pinned (pinned %s, now %s): accept it with tollgate mcp tools accept",
	[call.tool.name, i, host, short_sha(object.get(call.tool, "pinned_sha256", "")), short_sha(object.get(call.tool, "observed_sha256", ""))],
) if {
	input.mcp.method == "batch"
	some i, call in input.mcp.batch
	call.method == "tools/call"
	call.tool.changed == true
}

short_sha(sha) := substring(sha, 0, 12) if {
	is_string(sha)
	sha != ""
} else := "unknown"
