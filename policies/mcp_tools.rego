# MCP: a JSON-RPC tools/call naming a tool in data.tollgate.mcp.denied_tools[role] is
# denied, alone or as any element of a batch. Tollgate puts the parsed call in input.mcp.
package tollgate.authz

deny contains sprintf("MCP tool %s is denied for role %s", [tool, role]) if {
	input.mcp.method == "tools/call"
	tool := input.mcp.tool.name
	denied_tool(tool)
}

deny contains sprintf("MCP tool %s in batch[%d] is denied for role %s", [tool, i, role]) if {
	input.mcp.method == "batch"
	some i, call in input.mcp.batch
	call.method == "tools/call"
	tool := call.tool.name
	denied_tool(tool)
}

# A truncated body hides which tools it calls, so it may not reach an MCP server.
deny contains sprintf("body to MCP server %s was truncated, so its tool calls cannot be verified", [host]) if {
	body_truncated
	host in object.get(data.tollgate.mcp, "servers", [])
}

denied_tool(tool) if tool in object.get(data.tollgate.mcp.denied_tools, role, [])
