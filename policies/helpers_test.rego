# Builders for the policy input, shaped as Tollgate builds it, shared by every *_test.rego.
package tollgate.authz_test

# call(agent_id, method, authority, path) is an input for one call with no body. The agent
# claims the role the registry gives it, as a correctly configured sidecar does.
call(agent_id, method, authority, path) := {
	"attributes": {
		"request": {"http": {
			"id": "1",
			"method": method,
			"host": authority,
			"path": path,
			"scheme": "http",
			"protocol": "HTTP/1.1",
			"headers": {
				":authority": authority,
				":method": method,
				":path": path,
				":scheme": "http",
			},
			"body": "",
		}},
		"source": {"address": {"socketAddress": {"address": "127.0.0.1", "portValue": 5555}}},
		"destination": {"address": {"socketAddress": {"address": "127.0.0.1", "portValue": 8080}}},
	},
	"parsed_path": parsed_path(path),
	"parsed_query": {},
	"parsed_body": null,
	"truncated_body": false,
	"version": {"ext_authz": "v3", "encoding": "protojson"},
	"agent": {
		"id": agent_id,
		"role": object.get(data.tollgate.agents, [agent_id, "role"], "unregistered"),
		"labels": {},
	},
}

# post_json(agent_id, authority, path, body) is a JSON POST whose body Tollgate parsed.
post_json(agent_id, authority, path, body) := object.union(call(agent_id, "POST", authority, path), {
	"attributes": {"request": {"http": {
		"headers": {"content-type": "application/json"},
		"body": json.marshal(body),
	}}},
	"parsed_body": body,
})

# truncated(request) is request as Tollgate sends it when the body outgrew the buffer.
truncated(request) := object.union(request, {"parsed_body": null, "truncated_body": true})

# with_header(request, name, value) adds one request header.
with_header(request, name, value) := object.union(request, {"attributes": {"request": {"http": {"headers": {name: value}}}}})

# mcp_call(agent_id, tool, arguments) is a JSON-RPC tools/call to the MCP server.
mcp_call(agent_id, tool, arguments) := object.union(
	post_json(agent_id, "mcp.internal", "/mcp", {
		"jsonrpc": "2.0", "id": 1, "method": "tools/call",
		"params": {"name": tool, "arguments": arguments},
	}),
	{"mcp": {"id": 1, "method": "tools/call", "tool": {"name": tool, "arguments": arguments}}},
)

parsed_path(path) := [s | some i, s in split(split(path, "?")[0], "/"); i > 0]

# refund(body) is a support-bot refund through the HTTP endpoint.
refund(body) := post_json("support-bot", "payments.internal", "/v1/refunds", body)

# order(body) is a trader-1 order.
order(body) := post_json("trader-1", "orders.internal", "/v1/orders", body)

# loan_decision is a loan-bot decision without the fair lending header.
loan_decision := post_json("loan-bot", "loans.internal", "/v1/decisions", {"application": "a-1", "approved": true})

# batch(agent_id, calls) is a JSON-RPC batch to the MCP server, as input.mcp shows it.
batch(agent_id, calls) := object.union(
	post_json(agent_id, "mcp.internal", "/mcp", []),
	{"mcp": {"method": "batch", "batch": calls}},
)
