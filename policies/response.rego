# Response decisions (entrypoint tollgate/authz/response): Tollgate asks it about every
# JSON-RPC message an MCP server answers when mcp.response.decisionPath names it. The
# input is the request's input plus `response` (status, headers, transport, the method
# it answers, the request message, the message itself and, for tools/list, each tool's
# pin status). The result: allowed (false blocks the message: a JSON-RPC error with the
# reasons replaces it), reasons, remove_tools (tools/list entries the agent is not shown)
# and redact ({pattern, replacement} applied to every string of the result).
package tollgate.authz

# Reached only if evaluation cannot build either object below, so it must block.
default response := {
	"allowed": false,
	"reasons": ["policy reached no response decision"],
}

response := {
	"allowed": true,
	"reasons": sort(response_notes),
	"remove_tools": sort(hidden_tools),
	"redact": redactions,
} if {
	count(response_blocks) == 0
}

response := {
	"allowed": false,
	"reasons": sort(response_blocks),
} if {
	count(response_blocks) > 0
}

# tools/list shows an agent only the tools it may call: the same denied_tool rule that
# denies a tools/call (mcp_tools.rego) hides the tool from the list.
hidden_tools contains name if {
	input.response.method == "tools/list"
	some tool in input.response.message.result.tools
	name := tool.name
	denied_tool(name)
}

response_notes contains sprintf("tools/list: tool %s hidden from role %s", [name, role]) if {
	some name in hidden_tools
}

# With pinning on, a changed definition is named in the decision log (the call rule denies it).
response_notes contains sprintf("tools/list: tool %s changed since it was pinned", [tool.name]) if {
	some tool in input.response.tools
	tool.changed == true
}

default response_tool := ""

response_tool := input.response.request.tool.name

# result_text is every string of a tools/call result (content text, structuredContent), one
# per line: each pattern is matched once per answer (OPA's WebAssembly build compiles a
# regular expression on every regex.match, so a call per string would multiply the cost).
result_text := concat("\n", [value |
	walk(input.response.message.result, [_, value])
	is_string(value)
]) if {
	input.response.method == "tools/call"
}

default redact_patterns := []

redact_patterns := data.tollgate.mcp.redact

default block_patterns := []

block_patterns := data.tollgate.mcp.block

# redacted holds the index of each data.tollgate.mcp.redact pattern found in the result.
redacted contains i if {
	some i, p in redact_patterns
	regex.match(p.pattern, result_text)
}

# A pattern found in a tool result is replaced wherever it occurs (by the PEP, string by string).
redactions := [{"pattern": p.pattern, "replacement": p.replacement} |
	some i in sort(redacted)
	p := redact_patterns[i]
]

response_notes contains sprintf("redacted %s from the result of tool %s", [redact_patterns[i].name, response_tool]) if {
	some i in redacted
}

# A result carrying what data.tollgate.mcp.block names never reaches the agent.
response_blocks contains sprintf("the result of tool %s carries %s", [response_tool, p.name]) if {
	some p in block_patterns
	regex.match(p.pattern, result_text)
}
